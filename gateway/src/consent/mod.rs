//! Citizen consent: the identity provider, acting for a citizen it has
//! authenticated, grants an agency some consent-gated fields for one purpose
//! until an expiry, and may revoke it; the agency presents the signed token
//! with `GetCitizen`, and every use is checked.
//!
//! ```text
//! GrantConsent ─▶ claims signed (token.rs) + a row on the ConsentBook
//! GetCitizen(token) ─▶ signature ─▶ citizen ─▶ agency ─▶ purpose
//!                   ─▶ expiry ─▶ fields covered ─▶ not revoked (the book)
//! ```
//!
//! Each failed check has its own reason, so an agency knows whether to ask
//! the citizen again (expired, revoked, fields not covered) or fix a bug
//! (another citizen's, agency's or purpose's token, a forged one).

mod token;

pub use token::Claims;

use std::sync::Arc;
use std::time::Duration;

use lienthong_proto::Pid;
use time::OffsetDateTime;

use crate::blocking::off_runtime;
use crate::clock;
use crate::disclose::Field;
use crate::error::{Error, Reason, Result};
use crate::policy::{LivePolicy, Role};
use crate::registry::PopulationStore;
pub use crate::registry::{ConsentBook, StoredConsent};
use crate::signing::{SigningKey, VerifyingKey};

/// Longest a consent may last.
pub const MAX_VALIDITY: Duration = Duration::from_secs(366 * 86_400);

/// What the identity provider asks for on a citizen's behalf.
#[derive(Debug, Clone)]
pub struct ConsentRequest<'a> {
    /// The authenticated citizen.
    pub citizen: Pid,
    /// The agency that may see the fields.
    pub agency: &'a str,
    /// For this purpose.
    pub purpose: &'a str,
    /// These fields.
    pub fields: &'a [Field],
    /// Until then.
    pub expires_at: OffsetDateTime,
}

/// A granted consent.
#[derive(Debug, Clone)]
pub struct Granted {
    /// Its id, to revoke it.
    pub id: String,
    /// The signed token for the agency.
    pub token: String,
    /// Registry timestamp.
    pub expires_at: String,
}

/// The domain behind `GrantConsent` and `RevokeConsent`, and the check on
/// every consent-gated request.
#[derive(Clone)]
pub struct Consents {
    policy: LivePolicy,
    book: Arc<dyn ConsentBook>,
    store: Arc<dyn PopulationStore>,
    key: Arc<SigningKey>,
    public: VerifyingKey,
}

impl Consents {
    /// Consents kept in `book`, signed with `key`, about citizens of `store`.
    pub fn new(
        policy: LivePolicy,
        book: Arc<dyn ConsentBook>,
        store: Arc<dyn PopulationStore>,
        key: Arc<SigningKey>,
    ) -> Self {
        let public = key.verifying_key();
        Self {
            policy,
            book,
            store,
            key,
            public,
        }
    }

    /// Grants `request` for the identity provider `caller`.
    pub async fn grant(&self, caller: &str, request: &ConsentRequest<'_>) -> Result<Granted> {
        let policy = self.policy.current();
        policy.authorize_role(caller, Role::IdentityProvider, "grant_consent")?;
        if request.fields.is_empty() {
            return Err(Error::invalid("fields", "name at least one field"));
        }
        let grant = policy
            .agencies
            .get(request.agency)
            .ok_or_else(|| Error::invalid("agency", "not an agency in the policy"))?
            .grants
            .iter()
            .find(|g| g.purpose == request.purpose)
            .ok_or_else(|| Error::invalid("purpose", "the agency has no grant for this purpose"))?;
        if let Some(f) = request.fields.iter().find(|f| !grant.fields.contains(f)) {
            return Err(Error::invalid(
                "fields",
                format!("{} is not granted to the agency for this purpose", f.name()),
            ));
        }
        let now = OffsetDateTime::now_utc();
        if request.expires_at <= now {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        if request.expires_at > now + MAX_VALIDITY {
            return Err(Error::invalid("expires_at", "must be at most a year ahead"));
        }
        let mut fields: Vec<Field> = request.fields.to_vec();
        fields.sort();
        fields.dedup();
        let claims = Claims {
            v: 1,
            id: uuid::Uuid::now_v7().to_string(),
            pid: request.citizen.to_string(),
            agency: request.agency.to_owned(),
            purpose: request.purpose.to_owned(),
            fields,
            iat: now.unix_timestamp(),
            exp: request.expires_at.unix_timestamp(),
        };
        let expires_at = clock::timestamp(
            OffsetDateTime::from_unix_timestamp(claims.exp).map_err(|_| Error::Task)?,
        );
        let stored = StoredConsent {
            id: claims.id.clone(),
            pid: request.citizen,
            agency: claims.agency.clone(),
            purpose: claims.purpose.clone(),
            fields: claims
                .fields
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(","),
            issued_at: clock::timestamp(now),
            expires_at: expires_at.clone(),
        };
        let (store, book) = (self.store.clone(), self.book.clone());
        off_runtime(move || {
            if store.get(stored.pid)?.is_none() {
                return Err(Error::CitizenNotFound);
            }
            book.insert(&stored)
        })
        .await?;
        Ok(Granted {
            token: token::seal(&claims, &self.key),
            id: claims.id,
            expires_at,
        })
    }

    /// Revokes consent `id` of `citizen` for the identity provider `caller`;
    /// returns when it was revoked.
    pub async fn revoke(&self, caller: &str, citizen: Pid, id: &str) -> Result<String> {
        self.policy
            .current()
            .authorize_role(caller, Role::IdentityProvider, "revoke_consent")?;
        if id.is_empty() || id.len() > 64 {
            return Err(Error::invalid("consent_id", "must be a consent id"));
        }
        let (book, id) = (self.book.clone(), id.to_owned());
        off_runtime(move || book.revoke(citizen, &id, &clock::now()))
            .await?
            .ok_or(Error::ConsentNotFound)
    }

    /// Allows `agency` to receive the consent-gated `gated` fields of `pid`
    /// for `purpose` on the strength of `token`, or says why not.
    pub fn check(
        &self,
        token: &str,
        pid: Pid,
        agency: &str,
        purpose: &str,
        gated: &[Field],
    ) -> Result<()> {
        if gated.is_empty() {
            return Ok(());
        }
        if token.is_empty() {
            return Err(Error::ConsentRequired {
                fields: gated.iter().map(|f| f.name()).collect(),
            });
        }
        let refuse = |reason: Reason, description: &'static str| {
            Err(Error::Consent {
                reason,
                description,
            })
        };
        let Some(claims) = token::open(token, &self.public) else {
            return refuse(
                Reason::ConsentInvalid,
                "the consent token is malformed or not signed by this gateway",
            );
        };
        if claims.pid != pid.to_string() {
            return refuse(
                Reason::ConsentWrongCitizen,
                "the consent token is for another citizen",
            );
        }
        if claims.agency != agency {
            return refuse(
                Reason::ConsentWrongAgency,
                "the consent token was granted to another agency",
            );
        }
        if claims.purpose != purpose {
            return refuse(
                Reason::ConsentWrongPurpose,
                "the consent token was granted for another purpose",
            );
        }
        if claims.exp <= OffsetDateTime::now_utc().unix_timestamp() {
            return refuse(Reason::ConsentExpired, "the consent token has expired");
        }
        if gated.iter().any(|f| !claims.fields.contains(f)) {
            return refuse(
                Reason::ConsentFieldsNotCovered,
                "the consent token does not cover every consent-gated field asked for",
            );
        }
        match self.book.is_revoked(&claims.id)? {
            Some(false) => Ok(()),
            Some(true) => refuse(Reason::ConsentRevoked, "the citizen revoked this consent"),
            None => refuse(
                Reason::ConsentInvalid,
                "the consent token names a consent this gateway does not hold",
            ),
        }
    }
}
