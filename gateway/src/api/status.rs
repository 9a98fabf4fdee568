//! The one place an [`Error`] becomes a `google.rpc.Status`.
//!
//! Every status carries `ErrorInfo { reason, domain: "lienthong.v1" }`;
//! field problems add `BadRequest` violations, transient failures add
//! `RetryInfo`. The message says what is wrong and never holds personal data.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Error, Reason};

/// `ErrorInfo.domain` of every lienthong error.
pub const DOMAIN: &str = "lienthong.v1";

/// The gRPC code for a reason.
fn code(reason: Reason) -> Code {
    match reason {
        Reason::PidMalformed | Reason::ArgumentInvalid | Reason::BatchTooLarge => {
            Code::InvalidArgument
        }
        Reason::CitizenNotFound => Code::NotFound,
        Reason::PurposeNotPermitted
        | Reason::FieldNotPermitted
        | Reason::AgencyUnknown
        | Reason::RoleNotPermitted
        | Reason::ConsentRequired
        | Reason::ConsentInvalid
        | Reason::ConsentExpired
        | Reason::ConsentRevoked
        | Reason::ConsentWrongCitizen
        | Reason::ConsentWrongAgency
        | Reason::ConsentWrongPurpose
        | Reason::ConsentFieldsNotCovered
        | Reason::SectorQueryNotPermitted => Code::PermissionDenied,
        Reason::ConsentNotFound | Reason::SectorRecordNotFound => Code::NotFound,
        Reason::RequestIdReused => Code::AlreadyExists,
        Reason::CitizenDeceased
        | Reason::AlreadyMarried
        | Reason::UnderMarriageAge
        | Reason::ParentNotFound
        | Reason::ParentInvalid => Code::FailedPrecondition,
        Reason::PidSpaceExhausted | Reason::RateLimited | Reason::QuotaExceeded => {
            Code::ResourceExhausted
        }
        Reason::StoreUnavailable
        | Reason::AuditUnavailable
        | Reason::Overloaded
        | Reason::SectorUnavailable => Code::Unavailable,
        Reason::DeadlineExceeded | Reason::StreamIdle => Code::DeadlineExceeded,
        Reason::DataLoss => Code::DataLoss,
        Reason::Unauthenticated => Code::Unauthenticated,
        Reason::Internal => Code::Internal,
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let reason = err.reason();
        if matches!(
            reason,
            Reason::StoreUnavailable
                | Reason::AuditUnavailable
                | Reason::DataLoss
                | Reason::Internal
        ) {
            tracing::error!(error = %err, "request failed inside the gateway");
        }
        let mut details = ErrorDetails::with_error_info(reason.as_str(), DOMAIN, HashMap::new());
        match &err {
            Error::InvalidArgument {
                field, description, ..
            } => {
                details.add_bad_request_violation(field.clone(), description.clone());
            }
            Error::FieldNotPermitted { fields, .. } => {
                for f in fields {
                    details.add_bad_request_violation(
                        "fields",
                        format!("{f} is not granted for this purpose"),
                    );
                }
            }
            Error::Conflict {
                reason,
                subject,
                description,
            } => {
                details.add_precondition_failure_violation(reason.as_str(), *subject, *description);
            }
            Error::RequestIdReused { .. } => {
                details.add_bad_request_violation("request_id", err.to_string());
            }
            Error::RateLimited { retry_after, .. }
            | Error::QuotaExceeded { retry_after, .. }
            | Error::SectorUnavailable { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
            }
            Error::ConsentRequired { fields } => {
                for f in fields {
                    details.add_bad_request_violation(
                        "consent_token",
                        format!("{f} needs the citizen's consent"),
                    );
                }
            }
            Error::Consent { description, .. } => {
                details.add_bad_request_violation("consent_token", *description);
            }
            Error::BatchTooLarge { .. } => {
                details.add_bad_request_violation("claims", err.to_string());
            }
            _ if matches!(reason, Reason::StoreUnavailable | Reason::AuditUnavailable) => {
                details.set_retry_info(Some(Duration::from_secs(1)));
            }
            Error::Overloaded { .. } | Error::ShareUsed { .. } => {
                details.set_retry_info(Some(Duration::from_millis(100)));
            }
            _ => {}
        }
        Status::with_error_details(code(reason), err.to_string(), details)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::Code;
    use tonic_types::StatusExt;

    use super::*;

    /// The detail a status carries beside its `ErrorInfo`.
    #[derive(Debug, PartialEq, Eq)]
    enum Detail {
        /// `BadRequest`, naming this field.
        BadRequest(&'static str),
        /// `PreconditionFailure`, naming this subject.
        PreconditionFailure(&'static str),
        /// `RetryInfo`.
        RetryInfo,
        /// Nothing beside the `ErrorInfo`.
        None,
    }

    /// For every reason: an error of it, and the code and detail its status
    /// carries. The match has no catch-all, so a new reason cannot be added
    /// without its row here.
    fn row(reason: Reason) -> (Error, Code, Detail) {
        let wait = Duration::from_secs(2);
        let invalid = |field: &str| Error::InvalidArgument {
            reason,
            field: field.into(),
            description: "is wrong".into(),
        };
        let conflict = |subject| Error::Conflict {
            reason,
            subject,
            description: "prevents it",
        };
        let consent = Error::Consent {
            reason,
            description: "does not allow this",
        };
        let agency = || "bank".to_owned();
        match reason {
            Reason::PidMalformed => (
                invalid("pid"),
                Code::InvalidArgument,
                Detail::BadRequest("pid"),
            ),
            Reason::ArgumentInvalid => (
                invalid("request_id"),
                Code::InvalidArgument,
                Detail::BadRequest("request_id"),
            ),
            Reason::CitizenNotFound => (Error::CitizenNotFound, Code::NotFound, Detail::None),
            Reason::PurposeNotPermitted => (
                Error::PurposeNotPermitted {
                    agency: agency(),
                    operation: "get_citizen",
                    purpose: "MARKETING".into(),
                },
                Code::PermissionDenied,
                Detail::None,
            ),
            Reason::FieldNotPermitted => (
                Error::FieldNotPermitted {
                    agency: agency(),
                    purpose: "KYC_ONBOARDING".into(),
                    fields: vec!["blood_type"],
                },
                Code::PermissionDenied,
                Detail::BadRequest("fields"),
            ),
            Reason::BatchTooLarge => (
                Error::BatchTooLarge { size: 4, limit: 3 },
                Code::InvalidArgument,
                Detail::BadRequest("claims"),
            ),
            Reason::AgencyUnknown => (
                Error::AgencyUnknown { agency: agency() },
                Code::PermissionDenied,
                Detail::None,
            ),
            Reason::StoreUnavailable => (
                Error::Store(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    None,
                )),
                Code::Unavailable,
                Detail::RetryInfo,
            ),
            Reason::Unauthenticated => {
                (Error::Unauthenticated, Code::Unauthenticated, Detail::None)
            }
            Reason::DataLoss => (
                Error::Store(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    None,
                )),
                Code::DataLoss,
                Detail::None,
            ),
            Reason::RoleNotPermitted => (
                Error::RoleNotPermitted {
                    agency: agency(),
                    operation: "record_death",
                    role: "civil_registry",
                },
                Code::PermissionDenied,
                Detail::None,
            ),
            Reason::RequestIdReused => (
                Error::RequestIdReused {
                    request_id: "r-1".into(),
                },
                Code::AlreadyExists,
                Detail::BadRequest("request_id"),
            ),
            Reason::CitizenDeceased => (
                conflict("pid"),
                Code::FailedPrecondition,
                Detail::PreconditionFailure("pid"),
            ),
            Reason::AlreadyMarried | Reason::UnderMarriageAge => (
                conflict("spouse_pid"),
                Code::FailedPrecondition,
                Detail::PreconditionFailure("spouse_pid"),
            ),
            Reason::ParentNotFound | Reason::ParentInvalid => (
                conflict("father_pid"),
                Code::FailedPrecondition,
                Detail::PreconditionFailure("father_pid"),
            ),
            Reason::PidSpaceExhausted => (
                Error::PidSpaceExhausted,
                Code::ResourceExhausted,
                Detail::None,
            ),
            Reason::RateLimited => (
                Error::RateLimited {
                    agency: agency(),
                    retry_after: wait,
                },
                Code::ResourceExhausted,
                Detail::RetryInfo,
            ),
            Reason::QuotaExceeded => (
                Error::QuotaExceeded {
                    agency: agency(),
                    retry_after: wait,
                },
                Code::ResourceExhausted,
                Detail::RetryInfo,
            ),
            Reason::ConsentRequired => (
                Error::ConsentRequired {
                    fields: vec!["blood_type"],
                },
                Code::PermissionDenied,
                Detail::BadRequest("consent_token"),
            ),
            Reason::ConsentInvalid
            | Reason::ConsentExpired
            | Reason::ConsentRevoked
            | Reason::ConsentWrongCitizen
            | Reason::ConsentWrongAgency
            | Reason::ConsentWrongPurpose
            | Reason::ConsentFieldsNotCovered => (
                consent,
                Code::PermissionDenied,
                Detail::BadRequest("consent_token"),
            ),
            Reason::ConsentNotFound => (Error::ConsentNotFound, Code::NotFound, Detail::None),
            Reason::AuditUnavailable => (
                Error::Audit("the disk is full".into()),
                Code::Unavailable,
                Detail::RetryInfo,
            ),
            Reason::Overloaded => (
                Error::Overloaded { limit: 8 },
                Code::Unavailable,
                Detail::RetryInfo,
            ),
            Reason::StreamIdle => (
                Error::StreamIdle { limit: wait },
                Code::DeadlineExceeded,
                Detail::None,
            ),
            Reason::DeadlineExceeded => (
                Error::DeadlineExceeded { limit: wait },
                Code::DeadlineExceeded,
                Detail::None,
            ),
            Reason::SectorQueryNotPermitted => (
                Error::SectorQueryNotPermitted {
                    agency: agency(),
                    purpose: "KYC_ONBOARDING".into(),
                    query: "health.vaccinations".into(),
                },
                Code::PermissionDenied,
                Detail::None,
            ),
            Reason::SectorUnavailable => (
                Error::SectorUnavailable {
                    sector: "health",
                    why: "no answer".into(),
                    retry_after: wait,
                },
                Code::Unavailable,
                Detail::RetryInfo,
            ),
            Reason::SectorRecordNotFound => (
                Error::SectorRecordNotFound { sector: "health" },
                Code::NotFound,
                Detail::None,
            ),
            Reason::Internal => (Error::Task, Code::Internal, Detail::None),
        }
    }

    /// The contract's spelling of every reason, written out: renaming one
    /// breaks clients, and this test.
    fn contract(reason: Reason) -> &'static str {
        match reason {
            Reason::PidMalformed => "PID_MALFORMED",
            Reason::CitizenNotFound => "CITIZEN_NOT_FOUND",
            Reason::PurposeNotPermitted => "PURPOSE_NOT_PERMITTED",
            Reason::FieldNotPermitted => "FIELD_NOT_PERMITTED",
            Reason::BatchTooLarge => "BATCH_TOO_LARGE",
            Reason::ArgumentInvalid => "ARGUMENT_INVALID",
            Reason::AgencyUnknown => "AGENCY_UNKNOWN",
            Reason::StoreUnavailable => "STORE_UNAVAILABLE",
            Reason::DataLoss => "DATA_LOSS",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::RoleNotPermitted => "ROLE_NOT_PERMITTED",
            Reason::RequestIdReused => "REQUEST_ID_REUSED",
            Reason::CitizenDeceased => "CITIZEN_DECEASED",
            Reason::AlreadyMarried => "ALREADY_MARRIED",
            Reason::UnderMarriageAge => "UNDER_MARRIAGE_AGE",
            Reason::ParentNotFound => "PARENT_NOT_FOUND",
            Reason::ParentInvalid => "PARENT_INVALID",
            Reason::PidSpaceExhausted => "PID_SPACE_EXHAUSTED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::QuotaExceeded => "QUOTA_EXCEEDED",
            Reason::ConsentRequired => "CONSENT_REQUIRED",
            Reason::ConsentInvalid => "CONSENT_INVALID",
            Reason::ConsentExpired => "CONSENT_EXPIRED",
            Reason::ConsentRevoked => "CONSENT_REVOKED",
            Reason::ConsentWrongCitizen => "CONSENT_WRONG_CITIZEN",
            Reason::ConsentWrongAgency => "CONSENT_WRONG_AGENCY",
            Reason::ConsentWrongPurpose => "CONSENT_WRONG_PURPOSE",
            Reason::ConsentFieldsNotCovered => "CONSENT_FIELDS_NOT_COVERED",
            Reason::ConsentNotFound => "CONSENT_NOT_FOUND",
            Reason::AuditUnavailable => "AUDIT_UNAVAILABLE",
            Reason::Overloaded => "OVERLOADED",
            Reason::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Reason::StreamIdle => "STREAM_IDLE",
            Reason::SectorQueryNotPermitted => "SECTOR_QUERY_NOT_PERMITTED",
            Reason::SectorUnavailable => "SECTOR_UNAVAILABLE",
            Reason::SectorRecordNotFound => "SECTOR_RECORD_NOT_FOUND",
            Reason::Internal => "INTERNAL",
        }
    }

    #[test]
    fn every_reason_has_its_code_reason_domain_and_detail() {
        let mut spellings = std::collections::HashSet::new();
        for &reason in Reason::ALL {
            let (error, code, detail) = row(reason);
            assert_eq!(error.reason(), reason, "the row's error is of {reason:?}");
            let wire = contract(reason);
            assert_eq!(
                reason.as_str(),
                wire,
                "{reason:?} is spelled as the contract says"
            );
            assert!(spellings.insert(wire), "{wire} is spelled twice");
            assert!(
                wire.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{wire} is UPPER_SNAKE_CASE"
            );
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{reason:?}");
            let info = status.get_details_error_info().expect("ErrorInfo");
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                (wire, "lienthong.v1")
            );
            let details = status.get_error_details();
            let found = if let Some(bad) = details.bad_request() {
                let field = &bad.field_violations[0].field;
                Detail::BadRequest(if field == detail_field(&detail) {
                    detail_field(&detail)
                } else {
                    "another field"
                })
            } else if let Some(pre) = details.precondition_failure() {
                let v = &pre.violations[0];
                assert_eq!(v.r#type, wire, "the violation's type is the reason");
                Detail::PreconditionFailure(if v.subject == detail_field(&detail) {
                    detail_field(&detail)
                } else {
                    "another subject"
                })
            } else if details.retry_info().is_some() {
                Detail::RetryInfo
            } else {
                Detail::None
            };
            assert_eq!(found, detail, "{reason:?}");
        }
    }

    fn detail_field(detail: &Detail) -> &'static str {
        match detail {
            Detail::BadRequest(f) | Detail::PreconditionFailure(f) => f,
            Detail::RetryInfo | Detail::None => "",
        }
    }
}
