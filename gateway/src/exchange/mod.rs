//! The exchange: what an agency may ask, asked of the registry.
//!
//! [`Exchange`] is the domain behind `ExchangeService`: it checks the policy,
//! looks citizens up and answers with verifications or granted fields. It
//! knows nothing of gRPC; `api` decodes requests into its arguments and
//! encodes its answers.
//!
//! - [`batch`]: a `VerifyBatch` batch, admitted, charged and verified.

mod batch;

pub use batch::DecodedBatch;

use std::sync::Arc;

use lienthong_proto::Pid;
use lienthong_proto::name::NameMatch;

use crate::blocking::off_runtime;
use crate::consent::Consents;
use crate::disclose::{self, Disclosed, Field};
use crate::error::{Error, Result};
use crate::limits::AgencyRates;
use crate::policy::{LivePolicy, Operation};
use crate::projection::Projection;
use crate::registry::PopulationStore;
use crate::verify::{Claim, Verification, Verifier};

/// Most claims one batch may hold, unless configured otherwise.
pub const MAX_BATCH: usize = 10_000;

/// The domain behind `ExchangeService`.
#[derive(Clone)]
pub struct Exchange {
    policy: LivePolicy,
    store: Arc<dyn PopulationStore>,
    projection: Arc<Projection>,
    verifier: Verifier,
    consents: Consents,
    /// Charges each claim of a batch against the agency's daily quota.
    rates: Arc<AgencyRates>,
    /// Most claims one batch may hold.
    max_batch: usize,
}

/// Who asks, and for what purpose.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// Agency id (from the client certificate).
    pub agency: &'a str,
    /// Purpose code stated in the request.
    pub purpose: &'a str,
}

impl Exchange {
    /// An exchange under `policy` verifying claims against `projection`
    /// and disclosing fields from `store`, checking consent tokens with
    /// `consents` and batches against the quotas in `rates`.
    pub fn new(
        policy: LivePolicy,
        store: Arc<dyn PopulationStore>,
        projection: Arc<Projection>,
        consents: Consents,
        rates: Arc<AgencyRates>,
    ) -> Self {
        Self {
            policy,
            rates,
            max_batch: MAX_BATCH,
            verifier: Verifier::new(projection.clone()),
            projection,
            store,
            consents,
        }
    }

    /// The same exchange, taking batches of at most `claims`.
    pub fn with_max_batch(mut self, claims: usize) -> Self {
        self.max_batch = claims;
        self
    }

    /// The outbox `seq` verifications are made at now, after catching up
    /// to `min_seq` if the projection has not yet applied it (a write
    /// acknowledged through another gateway); a `seq` the store has not
    /// committed is refused.
    pub async fn verifying_at(&self, min_seq: Option<u64>) -> Result<u64> {
        let applied = self.projection.applied_seq();
        match min_seq {
            Some(seq) if seq > applied => {
                let (projection, store) = (self.projection.clone(), self.store.clone());
                off_runtime(move || projection.at_least(&*store, seq)).await
            }
            _ => Ok(applied),
        }
    }

    /// Verifies one claim. The look-up is in memory, so it runs in place.
    pub fn verify_identity(
        &self,
        asker: Asker<'_>,
        claim: &Claim,
        how: NameMatch,
    ) -> Result<Verification> {
        self.policy
            .current()
            .authorize(asker.agency, asker.purpose, Operation::VerifyIdentity)?;
        let mut answer = self.verifier.verify_many(&[claim], how)?;
        answer.pop().ok_or(Error::Task)
    }

    /// The granted `fields` of the citizen `pid`, each with its provenance;
    /// any field not granted refuses the whole request, and fields the
    /// policy gates on consent need a valid `consent_token` covering them.
    pub async fn get_citizen(
        &self,
        asker: Asker<'_>,
        pid: Pid,
        fields: Vec<Field>,
        consent_token: String,
    ) -> Result<Vec<Disclosed>> {
        if fields.is_empty() {
            return Err(Error::invalid("fields", "name at least one field"));
        }
        let gated = self
            .policy
            .current()
            .authorize_fields(asker.agency, asker.purpose, &fields)?;
        let (consents, store) = (self.consents.clone(), self.store.clone());
        let (agency, purpose) = (asker.agency.to_owned(), asker.purpose.to_owned());
        off_runtime(move || {
            consents.check(&consent_token, pid, &agency, &purpose, &gated)?;
            let citizen = store.get(pid)?.ok_or(Error::CitizenNotFound)?;
            Ok(disclose::disclose(&citizen, &fields))
        })
        .await
    }

    /// Allows `query_sector` of `sector.query` about `pid`: a sector must
    /// answer the query, the grant for the purpose must name it, and the Pid
    /// must be on the register. The adapter is asked only after this.
    pub async fn authorize_sector(
        &self,
        asker: Asker<'_>,
        pid: Pid,
        sector: &str,
        query: &str,
    ) -> Result<()> {
        if lienthong_proto::sector::query_name(sector, query).is_none() {
            let known = lienthong_proto::sector::query_names();
            let field = if known
                .iter()
                .any(|n| n.split_once('.').is_some_and(|(s, _)| s == sector))
            {
                "query"
            } else {
                "sector"
            };
            return Err(Error::invalid(
                field,
                format!(
                    "no sector answers this; the queries are {}",
                    known.join(", ")
                ),
            ));
        }
        let policy = self.policy.current();
        let grant = policy.authorize(asker.agency, asker.purpose, Operation::QuerySector)?;
        let wanted = format!("{sector}.{query}");
        if !grant.sector_queries.contains(&wanted) {
            return Err(Error::SectorQueryNotPermitted {
                agency: asker.agency.to_owned(),
                purpose: asker.purpose.to_owned(),
                query: wanted,
            });
        }
        let store = self.store.clone();
        match off_runtime(move || store.get(pid)).await? {
            Some(_) => Ok(()),
            None => Err(Error::CitizenNotFound),
        }
    }
}
