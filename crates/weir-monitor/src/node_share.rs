//! Taking part in the node budget: every period the monitor publishes what
//! its container passed and whether it wanted more, reads every other
//! monitor's figures from the shared node state, and sets its own buckets to
//! its max-min fair entitlement. No daemon sits on the hot path; the readers
//! only ever touch their own buckets.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use weir_gate::Budget;
use weir_gate::fair;
use weir_gate::node::{NodeState, Report};

use crate::gate::SharedBucket;

/// How often shares are recomputed.
pub const SHARE_PERIOD: Duration = Duration::from_millis(100);

/// The node side of a container's gate.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub budget: Budget,
    pub state_path: PathBuf,
    pub name: String,
    pub weight: u32,
    /// 0 block, 1 drop, 2 ring: shown by `weir gate status`.
    pub policy_code: u64,
}

/// The running share thread; stops and releases its slot when dropped.
#[derive(Debug)]
pub struct NodeShare {
    /// Dropping it ends the thread's wait at once.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for NodeShare {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Joins the node state and starts recomputing the container's share.
/// `buckets` are the container's buckets (one, or stdout and stderr); each is
/// scaled to the entitlement in proportion to its configured rate. Returns
/// once the first share is in force.
pub fn start(config: NodeConfig, buckets: Vec<SharedBucket>) -> Result<NodeShare, String> {
    let (stop, stopped) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let thread = thread::Builder::new()
        .name("weir-share".into())
        .spawn(move || {
            let state = match NodeState::open(&config.state_path) {
                Ok(state) => state,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let slot = match state.claim(
                std::process::id(),
                &config.name,
                config.weight,
                config.policy_code,
            ) {
                Ok(slot) => slot,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let mut sharer = Sharer::new(&config, buckets);
            sharer.step(&state, &slot, SHARE_PERIOD);
            let _ = ready_tx.send(Ok(()));
            let mut last = Instant::now();
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(SHARE_PERIOD) {
                let now = Instant::now();
                sharer.step(&state, &slot, now - last);
                last = now;
            }
        })
        .map_err(|e| format!("cannot start the node share thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(NodeShare {
            stop: Some(stop),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err("the node share thread ended before starting".into()),
    }
}

struct Sharer {
    node_rate: f64,
    buckets: Vec<SharedBucket>,
    configured_total: f64,
    last_passed: u64,
    granted: f64,
    /// The first period measures nothing yet.
    measured: bool,
    /// Passed bytes per second, smoothed over about ten periods.
    recent_rate: f64,
}

impl Sharer {
    fn new(config: &NodeConfig, buckets: Vec<SharedBucket>) -> Sharer {
        let configured_total = buckets.iter().map(|b| b.configured().rate).sum();
        Sharer {
            node_rate: config.budget.rate,
            buckets,
            configured_total,
            last_passed: 0,
            granted: config.budget.rate,
            measured: false,
            recent_rate: 0.0,
        }
    }

    /// One period: publish, read the others, take the entitlement.
    fn step(
        &mut self,
        state: &NodeState,
        slot: &weir_gate::node::SlotHandle<'_>,
        period: Duration,
    ) {
        let (mut passed, mut dropped) = (0, 0);
        let mut wanted_more = false;
        for bucket in &self.buckets {
            let (bytes, lost, more) = bucket.take_demand();
            passed += bytes;
            dropped += lost;
            wanted_more |= more;
        }
        let rate = (passed - self.last_passed) as f64 / period.as_secs_f64().max(1e-3);
        self.last_passed = passed;
        // Until one period was measured, count as wanting more.
        let quiet = self.measured && !wanted_more;
        self.recent_rate = if self.measured {
            0.9 * self.recent_rate + 0.1 * rate
        } else {
            rate
        };
        self.measured = true;
        slot.publish(Report {
            demand: quiet.then_some(rate as u64),
            granted: self.granted as u64,
            rate: self.recent_rate as u64,
            passed,
            dropped,
        });
        let active = state.active();
        let claims: Vec<fair::Claim> = active.iter().map(|view| view.claim()).collect();
        let Some(me) = active.iter().position(|view| view.index == slot.index()) else {
            return;
        };
        let entitled = fair::entitlement(self.node_rate, &claims, me);
        let total = entitled.min(self.configured_total);
        for bucket in &self.buckets {
            let share = bucket.configured().rate / self.configured_total;
            bucket.set_rate(total * share);
        }
        self.granted = total;
    }
}
