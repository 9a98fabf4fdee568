//! Who may do what, for which purpose: the policy file. Deny by default.
//!
//! ```toml
//! [agencies.vietcombank]                 # the agency id = its certificate's CN
//! name = "Vietcombank"
//! roles = ["consumer"]
//!
//! [[agencies.vietcombank.grants]]
//! purpose = "KYC_ONBOARDING"             # purpose code the agency states
//! operations = ["verify_identity", "verify_batch"]
//! fields = ["full_name"]                 # GetCitizen fields, for get_citizen
//! consent_fields = ["full_name"]         # of those, the ones that need the
//!                                        # citizen's consent token
//! sector_queries = ["banking.kyc_status"] # QuerySector queries, sector.query
//! hidden_for_days = 180                  # confidential: the citizen sees these
//!                                        # accesses only after this many days
//! ```
//!
//! An agency not in the file, a purpose it has no grant for, an operation or
//! a field its grant does not list: each is refused with its own reason.
//! [`LivePolicy`] holds the policy in force; SIGHUP reloads it. An agency may
//! have a `rate_limit = { requests_per_second = 200.0, burst = 400 }` and a
//! `daily_quota = 100000` (requests per calendar day, Vietnam time; each
//! claim of a batch counts as one).

mod live;

pub use live::LivePolicy;

use std::collections::BTreeMap;
use std::path::Path;

use crate::disclose::Field;
use crate::error::{Error, Result};

/// The shipped default policy, written to a new data directory.
pub const DEFAULT_POLICY: &str = include_str!("../../policy/default.toml");

/// An operation an agency can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    VerifyIdentity,
    VerifyBatch,
    GetCitizen,
    QuerySector,
}

impl Operation {
    /// The policy name.
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyIdentity => "verify_identity",
            Self::VerifyBatch => "verify_batch",
            Self::GetCitizen => "get_citizen",
            Self::QuerySector => "query_sector",
        }
    }
}

/// What an agency is, for the operations that belong to a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Consumer,
    CivilRegistry,
    ResidenceRegistry,
    CardIssuer,
    IdentityProvider,
}

impl Role {
    /// The policy name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::CivilRegistry => "civil_registry",
            Self::ResidenceRegistry => "residence_registry",
            Self::CardIssuer => "card_issuer",
            Self::IdentityProvider => "identity_provider",
        }
    }
}

/// One purpose an agency may act for, and what it may do for it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Purpose code, e.g. `KYC_ONBOARDING`.
    pub purpose: String,
    /// Operations allowed for this purpose.
    pub operations: Vec<Operation>,
    /// Fields `get_citizen` may return for this purpose.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Of `fields`, those returned only with the citizen's consent token.
    #[serde(default)]
    pub consent_fields: Vec<Field>,
    /// `query_sector` queries, as `sector.query` (e.g. `health.insurance_card`).
    #[serde(default)]
    pub sector_queries: Vec<String>,
    /// A confidential purpose (an investigation): the citizen sees these
    /// accesses in `ListAccesses` only this many days after they happened.
    #[serde(default)]
    pub hidden_for_days: Option<u32>,
}

/// How many requests an agency may make: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second (a `VerifyBatch` stream is one request).
    pub requests_per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

/// An agency: its display name, roles and grants.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    /// Display name.
    pub name: String,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Its request rate; unlimited when absent.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Requests per calendar day (Vietnam time); unlimited when absent.
    #[serde(default)]
    pub daily_quota: Option<u64>,
    /// Grants by purpose.
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// The whole policy.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Agencies by id (the subject CN of their client certificate).
    pub agencies: BTreeMap<String, Agency>,
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::parse(&text).map_err(|message| Error::Policy {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates policy text; the error names the line where it can.
    pub fn parse(text: &str) -> Result<Self, String> {
        let policy: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        for (id, agency) in &policy.agencies {
            let line = match line_after(text, &format!("[agencies.{id}]"), 1) {
                0 => line_after(text, &format!("agencies.{id}"), 1),
                n => n,
            };
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(format!(
                    "line {line}: agency id {id:?} must be 1–64 characters of a-z, 0-9 and '-'"
                ));
            }
            if lienthong_proto::pki::RESERVED_CNS.contains(&id.as_str()) {
                return Err(format!(
                    "line {line}: agency id {id:?} is the name of one of the gateway's own certificates; choose another"
                ));
            }
            if agency.daily_quota == Some(0) {
                return Err(format!(
                    "line {}: agency {id:?}: daily_quota must be at least 1 (leave it out for no quota)",
                    line_after(text, "daily_quota", line).max(line)
                ));
            }
            if let Some(limit) = agency.rate_limit
                && (!limit.requests_per_second.is_finite()
                    || limit.requests_per_second <= 0.0
                    || limit.burst == 0)
            {
                return Err(format!(
                    "line {}: agency {id:?}: rate_limit needs requests_per_second > 0 and burst ≥ 1",
                    line_after(text, "rate_limit", line).max(line)
                ));
            }
            let mut purposes = Vec::new();
            for grant in &agency.grants {
                let p = &grant.purpose;
                let grant_line = line_after(text, &format!("\"{p}\""), line).max(line);
                if p.is_empty()
                    || !p
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                {
                    return Err(format!(
                        "line {}: agency {id:?}: purpose {p:?} must be of A-Z, 0-9 and '_'",
                        grant_line
                    ));
                }
                if purposes.contains(&p) {
                    return Err(format!(
                        "line {}: agency {id:?} has two grants for purpose {p:?}",
                        line_after(text, &format!("\"{p}\""), grant_line + 1).max(grant_line)
                    ));
                }
                purposes.push(p);
                if grant.operations.is_empty() {
                    return Err(format!(
                        "line {grant_line}: agency {id:?}: the grant for {p:?} lists no operations"
                    ));
                }
                if let Some(f) = grant
                    .consent_fields
                    .iter()
                    .find(|f| !grant.fields.contains(f))
                {
                    return Err(format!(
                        "line {}: agency {id:?}: consent field {:?} of purpose {p:?} is not among its fields",
                        line_after(text, "consent_fields", grant_line).max(grant_line),
                        f.name()
                    ));
                }
                if let Some(q) = grant.sector_queries.iter().find(|q| !is_sector_query(q)) {
                    return Err(format!(
                        "line {}: agency {id:?}: {q:?} is not a sector query; the sectors answer {}",
                        line_after(text, &format!("\"{q}\""), grant_line).max(grant_line),
                        lienthong_proto::sector::query_names().join(", ")
                    ));
                }
                if grant.hidden_for_days.is_some_and(|d| d == 0 || d > 3650) {
                    return Err(format!(
                        "line {}: agency {id:?}: hidden_for_days of purpose {p:?} must be 1–3650",
                        line_after(text, "hidden_for_days", grant_line).max(grant_line)
                    ));
                }
            }
        }
        Ok(policy)
    }

    /// The grant that lets `agency` perform `op` for `purpose`, or why not.
    pub fn authorize(&self, agency: &str, purpose: &str, op: Operation) -> Result<&Grant> {
        let a = self
            .agencies
            .get(agency)
            .ok_or_else(|| Error::AgencyUnknown {
                agency: agency.to_owned(),
            })?;
        a.grants
            .iter()
            .find(|g| g.purpose == purpose && g.operations.contains(&op))
            .ok_or_else(|| Error::PurposeNotPermitted {
                agency: agency.to_owned(),
                operation: op.name(),
                purpose: purpose.to_owned(),
            })
    }

    /// Allows `agency` to perform `operation`, which belongs to `role`.
    pub fn authorize_role(&self, agency: &str, role: Role, operation: &'static str) -> Result<()> {
        let a = self
            .agencies
            .get(agency)
            .ok_or_else(|| Error::AgencyUnknown {
                agency: agency.to_owned(),
            })?;
        if a.roles.contains(&role) {
            Ok(())
        } else {
            Err(Error::RoleNotPermitted {
                agency: agency.to_owned(),
                operation,
                role: role.name(),
            })
        }
    }

    /// The agency's display name, if it is in the policy.
    pub fn agency_name(&self, agency: &str) -> Option<&str> {
        self.agencies.get(agency).map(|a| a.name.as_str())
    }

    /// How long `agency`'s accesses for `purpose` stay hidden from the
    /// citizen, if the purpose is confidential.
    pub fn hidden_for(&self, agency: &str, purpose: &str) -> Option<u32> {
        self.agencies
            .get(agency)?
            .grants
            .iter()
            .find(|g| g.purpose == purpose)?
            .hidden_for_days
    }

    /// Allows `get_citizen` of `fields` for `purpose`, or refuses the whole
    /// request naming every field not granted. Returns the requested fields
    /// that need the citizen's consent.
    pub fn authorize_fields(
        &self,
        agency: &str,
        purpose: &str,
        fields: &[Field],
    ) -> Result<Vec<Field>> {
        let grant = self.authorize(agency, purpose, Operation::GetCitizen)?;
        let mut refused: Vec<&'static str> = Vec::new();
        for f in fields.iter().filter(|f| !grant.fields.contains(f)) {
            if !refused.contains(&f.name()) {
                refused.push(f.name());
            }
        }
        if refused.is_empty() {
            let mut gated: Vec<Field> = Vec::new();
            for f in fields.iter().filter(|f| grant.consent_fields.contains(f)) {
                if !gated.contains(f) {
                    gated.push(*f);
                }
            }
            Ok(gated)
        } else {
            Err(Error::FieldNotPermitted {
                agency: agency.to_owned(),
                purpose: purpose.to_owned(),
                fields: refused,
            })
        }
    }
}

/// Whether `q` is a query one of the sectors answers, as `sector.query`.
fn is_sector_query(q: &str) -> bool {
    q.split_once('.')
        .is_some_and(|(sector, query)| lienthong_proto::sector::query_name(sector, query).is_some())
}

/// 1-based line of the first occurrence of `needle`, or 0.
/// The (1-based) line of the first `needle` at or after line `from`; 0 if
/// there is none.
fn line_after(text: &str, needle: &str, from: usize) -> usize {
    let start = if from <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(from - 2)
            .map_or(text.len(), |(at, _)| at + 1)
    };
    text[start..].find(needle).map_or(0, |at| {
        text[..start + at].bytes().filter(|&b| b == b'\n').count() + 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid() {
        let p = Policy::parse(DEFAULT_POLICY).unwrap();
        assert!(p.agencies.len() >= 8);
        p.authorize("vietcombank", "KYC_ONBOARDING", Operation::VerifyIdentity)
            .unwrap();
    }

    #[test]
    fn deny_by_default() {
        let p = Policy::parse(
            r#"
[agencies.clinic]
name = "Clinic"
roles = ["consumer"]
[[agencies.clinic.grants]]
purpose = "TREATMENT"
operations = ["get_citizen"]
fields = ["full_name", "date_of_birth"]
"#,
        )
        .unwrap();
        assert!(matches!(
            p.authorize("bank", "TREATMENT", Operation::GetCitizen),
            Err(Error::AgencyUnknown { .. })
        ));
        assert!(matches!(
            p.authorize("clinic", "MARKETING", Operation::GetCitizen),
            Err(Error::PurposeNotPermitted { .. })
        ));
        assert!(matches!(
            p.authorize("clinic", "TREATMENT", Operation::VerifyIdentity),
            Err(Error::PurposeNotPermitted { .. })
        ));
        p.authorize_fields("clinic", "TREATMENT", &[Field::FullName])
            .unwrap();
        match p.authorize_fields(
            "clinic",
            "TREATMENT",
            &[
                Field::Religion,
                Field::FullName,
                Field::Spouse,
                Field::Religion,
            ],
        ) {
            Err(Error::FieldNotPermitted { fields, .. }) => {
                assert_eq!(fields, ["religion", "spouse"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("[agencies.a]\nname = \"A\"\nrolez = []\n", "line 3"),
            (
                "[agencies.a]\nname = \"A\"\n[[agencies.a.grants]]\npurpose = \"P\"\noperations = [\"fly\"]\n",
                "line 5",
            ),
            (
                "[agencies.a]\nname = \"A\"\n[[agencies.a.grants]]\npurpose = \"P\"\noperations = [\"get_citizen\"]\nfields = [\"shoe_size\"]\n",
                "line 6",
            ),
            ("\n[agencies.Bad_Id]\nname = \"A\"\n", "line 2"),
            // The gateway's own certificates' names: such an agency's
            // certificate would reach the adapters, or pass for the probe.
            ("\n\n[agencies.lienthong-gateway]\nname = \"A\"\n", "line 3"),
            (
                "[agencies.lienthong-health-probe]\nname = \"A\"\n",
                "line 1",
            ),
            // A query no sector answers: refused at load, not at the adapter.
            (
                "[agencies.a]\nname = \"A\"\n[[agencies.a.grants]]\npurpose = \"P\"\noperations = [\"query_sector\"]\nsector_queries = [\"health.insurance_cards\"]\n",
                "line 6",
            ),
            (
                "[agencies.a]\nname = \"A\"\nrate_limit = { requests_per_second = 0.0, burst = 1 }\n",
                "line 3",
            ),
            (
                "[agencies.a]\nname = \"A\"\n[[agencies.a.grants]]\npurpose = \"lower\"\noperations = [\"get_citizen\"]\n",
                "line 4",
            ),
            // The key of the agency at fault, not the first in the file; an
            // id that begins another's is not mistaken for it.
            (
                "[agencies.ab]\nname = \"AB\"\ndaily_quota = 5\n[agencies.a]\nname = \"A\"\ndaily_quota = 0\n",
                "line 6",
            ),
            (
                "[agencies.a]\nname = \"A\"\n[[agencies.a.grants]]\npurpose = \"P\"\noperations = [\"get_citizen\"]\nhidden_for_days = 3\n[[agencies.a.grants]]\npurpose = \"Q\"\noperations = [\"get_citizen\"]\nhidden_for_days = 0\n",
                "line 10",
            ),
        ];
        for (text, want) in cases {
            let err = Policy::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?} → {err}");
        }
    }

    proptest::proptest! {
        /// Any text is a policy or an error saying why, never a panic; one
        /// line changed in the shipped policy the same.
        #[test]
        fn any_text_is_a_policy_or_says_why(text in "\\PC{0,200}", at in 0usize..200, with in "\\PC{0,40}") {
            if let Err(e) = Policy::parse(&text) {
                proptest::prop_assert!(!e.is_empty());
            }
            let mut lines: Vec<String> = DEFAULT_POLICY.lines().map(str::to_owned).collect();
            let at = at % lines.len();
            lines[at] = with;
            if let Err(e) = Policy::parse(&lines.join("\n")) {
                proptest::prop_assert!(!e.is_empty());
            }
        }
    }
}
