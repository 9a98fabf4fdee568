//! The sector catalogue: the sectors the gateway asks (`QuerySector`) and
//! that follow population events, each with its queries, the events it
//! consumes and the port its adapter listens on by default.
//!
//! ```text
//! sector            queries                        follows                               port
//! social_insurance  record                         citizen.died                          50061
//! health            insurance_card, vaccinations   citizen.born, citizen.died            50062
//! education         record                         citizen.residence_changed, .died      50063
//! telecom           subscriptions                  citizen.died, citizen.name_changed    50064
//! banking           kyc_status                     citizen.died                          50065
//! ```
//!
//! A policy grants a query as `sector.query` (`health.insurance_card`).
//! Adding a sector is an entry here and its adapter's file.

use std::sync::LazyLock;

use crate::event::kind;

/// One sector as the contract knows it.
#[derive(Debug, PartialEq, Eq)]
pub struct SectorSpec {
    /// The sector code, e.g. `health`.
    pub name: &'static str,
    /// The queries it answers, without the sector: e.g. `insurance_card`.
    pub queries: &'static [&'static str],
    /// The routing keys of the events its adapter consumes.
    pub routing_keys: &'static [&'static str],
    /// The port its adapter listens on by default.
    pub default_port: u16,
}

/// Social insurance: the insurance record; a death stops the pension.
pub const SOCIAL_INSURANCE: SectorSpec = SectorSpec {
    name: "social_insurance",
    queries: &["record"],
    routing_keys: &[kind::DIED],
    default_port: 50061,
};

/// Health: the insurance card and vaccinations; a birth issues a child's
/// card, a death invalidates the card.
pub const HEALTH: SectorSpec = SectorSpec {
    name: "health",
    queries: &["insurance_card", "vaccinations"],
    routing_keys: &[kind::BORN, kind::DIED],
    default_port: 50062,
};

/// Education: the education record; the school district follows the
/// residence, a death closes the record.
pub const EDUCATION: SectorSpec = SectorSpec {
    name: "education",
    queries: &["record"],
    routing_keys: &[kind::RESIDENCE_CHANGED, kind::DIED],
    default_port: 50063,
};

/// Telecom: SIM subscriptions; a death flags them for locking, a new name
/// for re-verification.
pub const TELECOM: SectorSpec = SectorSpec {
    name: "telecom",
    queries: &["subscriptions"],
    routing_keys: &[kind::DIED, kind::NAME_CHANGED],
    default_port: 50064,
};

/// Banking: the KYC status; a death flags the accounts.
pub const BANKING: SectorSpec = SectorSpec {
    name: "banking",
    queries: &["kyc_status"],
    routing_keys: &[kind::DIED],
    default_port: 50065,
};

/// Every sector, in a fixed order.
pub const ALL: &[&SectorSpec] = &[&SOCIAL_INSURANCE, &HEALTH, &EDUCATION, &TELECOM, &BANKING];

/// The sector called `name`.
pub fn by_name(name: &str) -> Option<&'static SectorSpec> {
    ALL.iter().copied().find(|s| s.name == name)
}

/// Every query a sector answers, as `sector.query` (the policy's and the
/// audit's spelling), in [`ALL`]'s order.
pub fn query_names() -> &'static [&'static str] {
    static NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        ALL.iter()
            .flat_map(|s| {
                s.queries
                    .iter()
                    .map(|q| &*Box::leak(format!("{}.{q}", s.name).into_boxed_str()))
            })
            .collect()
    });
    &NAMES
}

/// `sector.query` as a `'static` name, if a sector answers it.
pub fn query_name(sector: &str, query: &str) -> Option<&'static str> {
    query_names()
        .iter()
        .copied()
        .find(|n| n.split_once('.') == Some((sector, query)))
}

/// Every sector's name, in [`ALL`]'s order.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|s| s.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ports_and_queries_are_unique() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        let mut ports: Vec<u16> = ALL.iter().map(|s| s.default_port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), ALL.len());
        for s in ALL {
            assert!(!s.queries.is_empty() && !s.routing_keys.is_empty(), "{s:?}");
            assert!(
                s.routing_keys.iter().all(|k| kind::ALL.contains(k)),
                "{s:?}"
            );
        }
        assert_eq!(by_name("health"), Some(&HEALTH));
        assert_eq!(by_name("post"), None);
    }
}
