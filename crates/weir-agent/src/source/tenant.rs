//! Whose records a sender's are: the collector keeps its readers apart by
//! each record's `weir.tenant`, so a sender may say its own only when it
//! proved who it is. A listening source sets every record's tenant when
//! the sender's token or the source names one; keeps what an authenticated
//! sender said otherwise (an agent forwarding for several teams); and takes
//! out what a sender that did not authenticate said, so that anyone who
//! can reach an open port cannot file records under someone else's tenant.

use crate::record::{LogRecord, TENANT};

/// What a source does with the `weir.tenant` of the records of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenancy<'a> {
    /// Every record is this tenant's, whatever its sender said.
    Fixed(&'a str),
    /// The sender authenticated, without a tenant of its own: what it
    /// said stands.
    AsSent,
    /// The sender did not authenticate: what it said is taken out.
    Unclaimed,
}

impl<'a> Tenancy<'a> {
    /// `fixed` by the sender's token or else the source, if either names
    /// one; otherwise as the sender said if it `authenticated`.
    pub fn new(fixed: Option<&'a str>, authenticated: bool) -> Tenancy<'a> {
        match fixed {
            Some(tenant) => Tenancy::Fixed(tenant),
            None if authenticated => Tenancy::AsSent,
            None => Tenancy::Unclaimed,
        }
    }

    pub fn apply(self, records: &mut [LogRecord]) {
        match self {
            Tenancy::Fixed(tenant) => {
                for record in records {
                    record.set_resource(TENANT, tenant);
                }
            }
            Tenancy::AsSent => {}
            Tenancy::Unclaimed => {
                for record in records {
                    record.resource.retain(|(key, _)| key != TENANT);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claiming(tenants: &[&str]) -> LogRecord {
        let mut record = LogRecord::default();
        record.resource.push(("host.name".into(), "n1".into()));
        for tenant in tenants {
            record.resource.push((TENANT.into(), (*tenant).into()));
        }
        record
    }

    fn tenants(record: &LogRecord) -> Vec<&str> {
        record
            .resource
            .iter()
            .filter(|(k, _)| k == TENANT)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn only_an_authenticated_sender_says_whose_its_records_are() {
        let mut records = vec![claiming(&["team-b"]), claiming(&["team-b", "team-c"])];
        Tenancy::new(Some("team-a"), false).apply(&mut records);
        assert!(records.iter().all(|r| tenants(r) == ["team-a"]));
        let mut records = vec![claiming(&["team-b"]), claiming(&[])];
        Tenancy::new(None, true).apply(&mut records);
        assert_eq!(tenants(&records[0]), ["team-b"]);
        assert!(tenants(&records[1]).is_empty());
        let mut records = vec![claiming(&["team-b", "team-c"])];
        Tenancy::new(None, false).apply(&mut records);
        assert!(tenants(&records[0]).is_empty());
        assert_eq!(
            records[0].resource("host.name"),
            Some("n1"),
            "the rest stays"
        );
    }
}
