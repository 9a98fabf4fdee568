//! The gateway's one error type.
//!
//! Every failure a caller can see carries a stable [`Reason`]; `api::status`
//! is the one place that turns an [`Error`] into a `google.rpc.Status`.
//! Messages name fields, limits, purposes and agencies — never a person's
//! data.

use std::path::PathBuf;

/// Declares [`Reason`] and its wire spelling, once per reason, so that the
/// list of every reason ([`Reason::ALL`]) cannot miss one.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// Stable, machine-readable reasons (`ErrorInfo.reason` on the wire).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in the order declared.
            pub const ALL: &[Reason] = &[$(Reason::$variant),*];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $wire,)*
                }
            }
        }
    };
}

reasons! {
    /// Not a well-formed Pid (length, digits, province code).
    PidMalformed = "PID_MALFORMED",
    /// No citizen has this Pid.
    CitizenNotFound = "CITIZEN_NOT_FOUND",
    /// The agency's grants do not allow this operation for this purpose.
    PurposeNotPermitted = "PURPOSE_NOT_PERMITTED",
    /// A requested field is not granted for this purpose.
    FieldNotPermitted = "FIELD_NOT_PERMITTED",
    /// A batch holds more claims than allowed.
    BatchTooLarge = "BATCH_TOO_LARGE",
    /// A request field is missing or invalid (other than the Pid).
    ArgumentInvalid = "ARGUMENT_INVALID",
    /// The caller's certificate names no agency in the policy.
    AgencyUnknown = "AGENCY_UNKNOWN",
    /// The registry store failed; retrying may help.
    StoreUnavailable = "STORE_UNAVAILABLE",
    /// The registry's file is damaged: retrying will not help; the
    /// operator restores it.
    DataLoss = "DATA_LOSS",
    /// The request carried no authenticated peer.
    Unauthenticated = "UNAUTHENTICATED",
    /// The agency has no role that owns this registry write.
    RoleNotPermitted = "ROLE_NOT_PERMITTED",
    /// A `request_id` was reused for a different request.
    RequestIdReused = "REQUEST_ID_REUSED",
    /// The citizen is deceased; the change cannot apply.
    CitizenDeceased = "CITIZEN_DECEASED",
    /// A marriage names someone who is already married.
    AlreadyMarried = "ALREADY_MARRIED",
    /// A marriage names someone under the legal age of marriage.
    UnderMarriageAge = "UNDER_MARRIAGE_AGE",
    /// A birth names a parent who is not on the register.
    ParentNotFound = "PARENT_NOT_FOUND",
    /// A named parent cannot be this child's parent (sex, dates).
    ParentInvalid = "PARENT_INVALID",
    /// No personal identification number is left for a birth's province, sex
    /// and year.
    PidSpaceExhausted = "PID_SPACE_EXHAUSTED",
    /// The agency is over its request rate.
    RateLimited = "RATE_LIMITED",
    /// The agency has used its daily quota.
    QuotaExceeded = "QUOTA_EXCEEDED",
    /// Consent-gated fields were asked for without a consent token.
    ConsentRequired = "CONSENT_REQUIRED",
    /// The consent token is malformed, forged, or unknown to the gateway.
    ConsentInvalid = "CONSENT_INVALID",
    /// The consent token has expired.
    ConsentExpired = "CONSENT_EXPIRED",
    /// The citizen revoked the consent.
    ConsentRevoked = "CONSENT_REVOKED",
    /// The consent token is for another citizen.
    ConsentWrongCitizen = "CONSENT_WRONG_CITIZEN",
    /// The consent token was granted to another agency.
    ConsentWrongAgency = "CONSENT_WRONG_AGENCY",
    /// The consent token was granted for another purpose.
    ConsentWrongPurpose = "CONSENT_WRONG_PURPOSE",
    /// The consent token does not cover every consent-gated field asked for.
    ConsentFieldsNotCovered = "CONSENT_FIELDS_NOT_COVERED",
    /// The citizen has no consent with this id.
    ConsentNotFound = "CONSENT_NOT_FOUND",
    /// The audit log could not record the request, so no answer is given.
    AuditUnavailable = "AUDIT_UNAVAILABLE",
    /// The gateway has as many calls in flight as it takes; it sheds this
    /// one rather than queue it.
    Overloaded = "OVERLOADED",
    /// The call did not finish within the server's deadline.
    DeadlineExceeded = "DEADLINE_EXCEEDED",
    /// A stream sent nothing for longer than the server waits.
    StreamIdle = "STREAM_IDLE",
    /// The agency's grant for this purpose does not name this sector query.
    SectorQueryNotPermitted = "SECTOR_QUERY_NOT_PERMITTED",
    /// The sector's adapter did not answer in time, failed, or is paused
    /// after repeated failures; retrying later may help.
    SectorUnavailable = "SECTOR_UNAVAILABLE",
    /// The sector holds no record of this citizen.
    SectorRecordNotFound = "SECTOR_RECORD_NOT_FOUND",
    /// Something inside the gateway failed; retrying will not help.
    Internal = "INTERNAL",
}

impl Reason {
    /// Whether the policy, a consent check or a limit refused the request
    /// (rather than it being allowed and then failing).
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Self::PurposeNotPermitted
                | Self::FieldNotPermitted
                | Self::AgencyUnknown
                | Self::Unauthenticated
                | Self::RoleNotPermitted
                | Self::RateLimited
                | Self::QuotaExceeded
                | Self::ConsentRequired
                | Self::ConsentInvalid
                | Self::ConsentExpired
                | Self::ConsentRevoked
                | Self::ConsentWrongCitizen
                | Self::ConsentWrongAgency
                | Self::ConsentWrongPurpose
                | Self::ConsentFieldsNotCovered
                | Self::SectorQueryNotPermitted
        )
    }
}

/// Everything that can go wrong in the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed or missing.
    #[error("{field}: {description}")]
    InvalidArgument {
        /// `PidMalformed` or `ArgumentInvalid`.
        reason: Reason,
        /// The request field at fault, e.g. `claim.pid`.
        field: String,
        /// What is wrong with it (no personal data).
        description: String,
    },
    /// No citizen has the Pid.
    #[error("no citizen has this personal identification number")]
    CitizenNotFound,
    /// The connection carried no authenticated agency.
    #[error("no authenticated client certificate")]
    Unauthenticated,
    /// The caller's agency is not in the policy.
    #[error("agency {:?} is not in the policy", echo(.agency))]
    AgencyUnknown { agency: String },
    /// The agency may not perform the operation for the purpose.
    #[error("agency {:?} may not {operation} for purpose {:?}", echo(.agency), echo(.purpose))]
    PurposeNotPermitted {
        agency: String,
        operation: &'static str,
        purpose: String,
    },
    /// Some requested fields are not granted; nothing is returned.
    #[error("fields not granted to agency {:?} for purpose {:?}: {}", echo(.agency), echo(.purpose), fields.join(", "))]
    FieldNotPermitted {
        agency: String,
        purpose: String,
        /// The refused field names.
        fields: Vec<&'static str>,
    },
    /// The agency has none of the roles that own a registry write.
    #[error("agency {:?} may not {operation}: it needs the {role} role", echo(.agency))]
    RoleNotPermitted {
        agency: String,
        operation: &'static str,
        role: &'static str,
    },
    /// The `request_id` was first used for a different request.
    #[error("request_id {:?} was already used for a different request", echo(.request_id))]
    RequestIdReused { request_id: String },
    /// The register's current state does not allow the change.
    #[error("{subject}: {description}")]
    Conflict {
        /// `CitizenDeceased`, `AlreadyMarried`, `UnderMarriageAge`,
        /// `ParentNotFound`, `ParentInvalid`.
        reason: Reason,
        /// The request field naming the citizen at fault, e.g. `mother_pid`.
        subject: &'static str,
        /// What prevents the change (no personal data).
        description: &'static str,
    },
    /// The agency is over its request rate.
    #[error("agency {:?} is over its request rate; retry in {:.3} s", echo(.agency), retry_after.as_secs_f64())]
    RateLimited {
        agency: String,
        retry_after: std::time::Duration,
    },
    /// The agency has used its requests for the day.
    #[error("agency {:?} has used its daily quota; retry in {} s", echo(.agency), retry_after.as_secs())]
    QuotaExceeded {
        agency: String,
        retry_after: std::time::Duration,
    },
    /// Consent-gated fields were asked for without a token.
    #[error("these fields need the citizen's consent token: {}", fields.join(", "))]
    ConsentRequired { fields: Vec<&'static str> },
    /// The consent token does not allow this request.
    #[error("{description}")]
    Consent {
        /// One of the `Consent*` reasons.
        reason: Reason,
        description: &'static str,
    },
    /// The citizen has no consent with this id.
    #[error("the citizen has no consent with this id")]
    ConsentNotFound,
    /// Every admission permit is taken.
    #[error("the gateway is at its limit of {limit} calls in flight; retry shortly")]
    Overloaded { limit: usize },
    /// The caller's agency holds its share of the calls in flight.
    #[error("this agency holds its share of {share} calls in flight; retry once one ends")]
    ShareUsed { share: usize },
    /// A stream sent nothing for `limit`.
    #[error("no message for {} ms: the stream is ended; open another to go on", limit.as_millis())]
    StreamIdle { limit: std::time::Duration },
    /// The server-side deadline passed.
    #[error("the call did not finish within the server's deadline of {} ms", limit.as_millis())]
    DeadlineExceeded { limit: std::time::Duration },
    /// The grant does not name the sector query.
    #[error("agency {:?} may not ask {:?} for purpose {:?}", echo(.agency), echo(.query), echo(.purpose))]
    SectorQueryNotPermitted {
        agency: String,
        purpose: String,
        query: String,
    },
    /// The sector's adapter cannot answer now.
    #[error("the {sector} sector is unavailable: {why}")]
    SectorUnavailable {
        sector: &'static str,
        why: String,
        retry_after: std::time::Duration,
    },
    /// The sector has no record of the citizen.
    #[error("the {sector} sector holds no record of this citizen")]
    SectorRecordNotFound { sector: &'static str },
    /// The audit log failed; the request is not answered.
    #[error("audit log: {0}")]
    Audit(String),
    /// Another process writes the shared audit chain of this node name.
    #[error(
        "audit log: another replica is writing the audit chain of node {node:?} in the shared \
         store (its lock is held); give each replica its own --node-name"
    )]
    AuditNodeTaken { node: String },
    /// The gateway's signing key is missing or invalid.
    #[error("signing key: {0}")]
    Key(String),
    /// Every serial number for a province, sex and birth year is taken.
    #[error("no personal identification number is left for this province, sex and birth year")]
    PidSpaceExhausted,
    /// A batch exceeds the claim limit.
    #[error("a batch holds {size} claims; the limit is {limit}")]
    BatchTooLarge { size: usize, limit: usize },
    /// The registry store failed.
    #[error("registry store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The shared (PostgreSQL) registry failed: the connection, or a
    /// statement. The message names the server's code and message, never
    /// its detail (which may quote a row's values).
    #[error("registry store (PostgreSQL): {}", postgres_summary(.0))]
    Postgres(#[from] postgres::Error),
    /// The registry, where daily quotas are counted, did not answer, and
    /// the agency has used the block it may go on with meanwhile.
    #[error("the daily quota count cannot be reached in the registry store; retry shortly")]
    QuotaLedgerDown,
    /// Every connection to the shared registry is in use.
    #[error("registry store (PostgreSQL): all {open} connections are in use; retry shortly")]
    StoreBusy { open: usize },
    /// The `--store` URL is not one the gateway can use.
    #[error("--store: {0}")]
    StoreUrl(String),
    /// A stored record could not be decoded.
    #[error("registry store: a stored record is corrupt")]
    Corrupt,
    /// The registry's schema is newer than this binary.
    #[error("registry schema version {found} is newer than this binary's {supported}")]
    SchemaTooNew { found: i64, supported: i64 },
    /// The policy file is invalid.
    #[error("policy {path}: {message}")]
    Policy { path: PathBuf, message: String },
    /// The configuration file is invalid.
    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// Certificates or keys are missing or invalid.
    #[error("tls: {0}")]
    Tls(String),
    /// A data directory that has served lacks what it held: the gateway
    /// does not re-create it.
    #[error(
        "{}: {what} is missing from a data directory that has served (it holds an audit log); \
         lienthong does not re-create it there: restore it from a backup",
        path.display()
    )]
    StateMissing { path: PathBuf, what: &'static str },
    /// `lienthong check` found problems in a data directory.
    #[error("the data directory has {problems} problem(s)")]
    CheckFailed { problems: usize },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The synthetic population could not be built.
    #[error(transparent)]
    Population(#[from] lienthong_proto::population::PopulationError),
    /// The server could not be built or failed while serving.
    #[error("server: {0}")]
    Server(String),
    /// A blocking task failed to complete.
    #[error("internal task failed")]
    Task,
}

impl Error {
    /// An `ArgumentInvalid` error for `field`.
    pub(crate) fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument {
            reason: Reason::ArgumentInvalid,
            field: field.into(),
            description: description.into(),
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// The stable reason for callers.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidArgument { reason, .. } => *reason,
            Self::CitizenNotFound => Reason::CitizenNotFound,
            Self::AgencyUnknown { .. } => Reason::AgencyUnknown,
            Self::PurposeNotPermitted { .. } => Reason::PurposeNotPermitted,
            Self::FieldNotPermitted { .. } => Reason::FieldNotPermitted,
            Self::BatchTooLarge { .. } => Reason::BatchTooLarge,
            Self::Unauthenticated => Reason::Unauthenticated,
            Self::RoleNotPermitted { .. } => Reason::RoleNotPermitted,
            Self::RequestIdReused { .. } => Reason::RequestIdReused,
            Self::Conflict { reason, .. } => *reason,
            Self::PidSpaceExhausted => Reason::PidSpaceExhausted,
            Self::RateLimited { .. } => Reason::RateLimited,
            Self::QuotaExceeded { .. } => Reason::QuotaExceeded,
            Self::ConsentRequired { .. } => Reason::ConsentRequired,
            Self::Consent { reason, .. } => *reason,
            Self::ConsentNotFound => Reason::ConsentNotFound,
            Self::Overloaded { .. } | Self::ShareUsed { .. } => Reason::Overloaded,
            Self::DeadlineExceeded { .. } => Reason::DeadlineExceeded,
            Self::StreamIdle { .. } => Reason::StreamIdle,
            Self::SectorQueryNotPermitted { .. } => Reason::SectorQueryNotPermitted,
            Self::SectorUnavailable { .. } => Reason::SectorUnavailable,
            Self::SectorRecordNotFound { .. } => Reason::SectorRecordNotFound,
            Self::Audit(_) | Self::AuditNodeTaken { .. } => Reason::AuditUnavailable,
            Self::Store(e) if is_damage(e) => Reason::DataLoss,
            Self::Store(_) | Self::Postgres(_) | Self::StoreBusy { .. } | Self::QuotaLedgerDown => {
                Reason::StoreUnavailable
            }
            Self::Corrupt
            | Self::SchemaTooNew { .. }
            | Self::Policy { .. }
            | Self::Config { .. }
            | Self::StoreUrl(_)
            | Self::Tls(_)
            | Self::Key(_)
            | Self::Io { .. }
            | Self::StateMissing { .. }
            | Self::CheckFailed { .. }
            | Self::Population(_)
            | Self::Server(_)
            | Self::Task => Reason::Internal,
        }
    }
}

/// Whether SQLite says its file is damaged (a corrupt page, or no
/// database at all), rather than busy or out of space.
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// What a PostgreSQL error says without its detail: the SQLSTATE and the
/// server's message for a database error, the client's own text otherwise
/// (a connection refused, closed, timed out).
fn postgres_summary(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The most characters of a caller's text an error message repeats.
pub const ECHO_CHARS: usize = 64;

/// `text` as an error message repeats it: at most [`ECHO_CHARS`]
/// characters, then `…` — a caller cannot make the gateway's answers, logs
/// or audit hashes grow with what it sends.
pub(crate) fn echo(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(ECHO_CHARS) {
        None => text.into(),
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
    }
}

/// The gateway's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_text_is_repeated_cut_short() {
        let long = "P".repeat(100_000);
        let err = Error::PurposeNotPermitted {
            agency: "bank".into(),
            operation: "get_citizen",
            purpose: long.clone(),
        };
        let said = err.to_string();
        assert!(said.len() < 200, "{} bytes", said.len());
        assert!(
            said.contains(&format!("{}…", "P".repeat(ECHO_CHARS))),
            "{said}"
        );
        let reused = Error::RequestIdReused {
            request_id: "Đ".repeat(1_000),
        }
        .to_string();
        assert!(reused.chars().count() < 150, "{reused}");
        assert_eq!(echo("KYC_ONBOARDING"), "KYC_ONBOARDING");
    }
}
