//! Max-min fair shares of the node budget, by weight.
//!
//! A container that wants less than its weighted share gets all it wants;
//! what it leaves is shared among the others by weight, again and again,
//! until every container is either satisfied or held to an equal share per
//! unit of weight ("water-filling").

/// One container's claim on the node budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    pub weight: u32,
    /// Bytes per second it would use; `f64::INFINITY` when it wants more
    /// than it was given.
    pub demand: f64,
}

/// Shares of `capacity` (bytes per second) for `claims`, in order.
pub fn fair_shares(capacity: f64, claims: &[Claim]) -> Vec<f64> {
    let mut shares = vec![0.0; claims.len()];
    let mut open: Vec<usize> = (0..claims.len())
        .filter(|&i| claims[i].weight > 0)
        .collect();
    let mut remaining = capacity.max(0.0);
    while !open.is_empty() {
        let total_weight: f64 = open.iter().map(|&i| f64::from(claims[i].weight)).sum();
        let per_weight = remaining / total_weight;
        let (satisfied, unsatisfied): (Vec<usize>, Vec<usize>) = open
            .iter()
            .partition(|&&i| claims[i].demand <= per_weight * f64::from(claims[i].weight));
        if satisfied.is_empty() {
            for i in unsatisfied {
                shares[i] = per_weight * f64::from(claims[i].weight);
            }
            break;
        }
        for i in satisfied {
            shares[i] = claims[i].demand.max(0.0);
            remaining -= shares[i];
        }
        open = unsatisfied;
    }
    shares
}

/// What `claims[me]` is entitled to if it wanted more than it does: its
/// share computed with its demand unbounded. A monitor runs at this rate, so
/// a container below its share is never throttled for being quiet so far.
pub fn entitlement(capacity: f64, claims: &[Claim], me: usize) -> f64 {
    let mut wanting = claims.to_vec();
    wanting[me].demand = f64::INFINITY;
    fair_shares(capacity, &wanting)[me]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(weight: u32, demand: f64) -> Claim {
        Claim { weight, demand }
    }

    #[test]
    fn the_quiet_get_what_they_want_and_the_rest_is_split_by_weight() {
        let shares = fair_shares(
            100.0,
            &[
                claim(1, 10.0),
                claim(1, f64::INFINITY),
                claim(2, f64::INFINITY),
            ],
        );
        assert_eq!(shares, vec![10.0, 30.0, 60.0]);
        assert_eq!(
            fair_shares(100.0, &[claim(1, 10.0), claim(1, 20.0)]),
            vec![10.0, 20.0]
        );
        assert_eq!(
            entitlement(100.0, &[claim(1, 10.0), claim(1, f64::INFINITY)], 0),
            50.0
        );
    }

    fn claims() -> impl Strategy<Value = Vec<Claim>> {
        proptest::collection::vec(
            (1u32..5, prop_oneof![Just(f64::INFINITY), 0.0f64..1000.0])
                .prop_map(|(w, d)| claim(w, d)),
            1..12,
        )
    }

    proptest! {
        #[test]
        fn shares_never_exceed_capacity_or_demand(capacity in 1.0f64..10_000.0, claims in claims()) {
            let shares = fair_shares(capacity, &claims);
            let total: f64 = shares.iter().sum();
            prop_assert!(total <= capacity * (1.0 + 1e-9) + 1e-9, "{total} > {capacity}");
            for (share, claim) in shares.iter().zip(&claims) {
                prop_assert!(*share <= claim.demand + 1e-9);
            }
        }

        #[test]
        fn a_container_below_its_weighted_share_is_never_throttled(capacity in 1.0f64..10_000.0, claims in claims()) {
            let shares = fair_shares(capacity, &claims);
            let total_weight: f64 = claims.iter().map(|c| f64::from(c.weight)).sum();
            for (share, claim) in shares.iter().zip(&claims) {
                let equal = capacity * f64::from(claim.weight) / total_weight;
                if claim.demand <= equal {
                    prop_assert!((share - claim.demand).abs() < 1e-6, "wanted {} got {share}", claim.demand);
                } else {
                    // Held back, but never below its weighted equal share.
                    prop_assert!(*share >= equal - 1e-6, "share {share} below equal share {equal}");
                }
            }
        }

        #[test]
        fn when_everyone_wants_more_the_capacity_is_used_in_full(capacity in 1.0f64..10_000.0, weights in proptest::collection::vec(1u32..5, 1..12)) {
            let claims: Vec<Claim> = weights.iter().map(|&w| claim(w, f64::INFINITY)).collect();
            let shares = fair_shares(capacity, &claims);
            let total: f64 = shares.iter().sum();
            prop_assert!((total - capacity).abs() < 1e-6 * capacity);
            let total_weight: f64 = weights.iter().map(|&w| f64::from(w)).sum();
            for (share, w) in shares.iter().zip(&weights) {
                prop_assert!((share - capacity * f64::from(*w) / total_weight).abs() < 1e-6 * capacity);
            }
        }
    }
}
