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
        | Reason::ParentNotFound
        | Reason::ParentInvalid => Code::FailedPrecondition,
        Reason::PidSpaceExhausted | Reason::RateLimited | Reason::QuotaExceeded => {
            Code::ResourceExhausted
        }
        Reason::StoreUnavailable
        | Reason::AuditUnavailable
        | Reason::Overloaded
        | Reason::SectorUnavailable => Code::Unavailable,
        Reason::DeadlineExceeded => Code::DeadlineExceeded,
        Reason::Unauthenticated => Code::Unauthenticated,
        Reason::Internal => Code::Internal,
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let reason = err.reason();
        if matches!(
            reason,
            Reason::StoreUnavailable | Reason::AuditUnavailable | Reason::Internal
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
            Error::Overloaded { .. } => {
                details.set_retry_info(Some(Duration::from_millis(100)));
            }
            _ => {}
        }
        Status::with_error_details(code(reason), err.to_string(), details)
    }
}
