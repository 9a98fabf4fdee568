//! `lienthong.v1.RegistryService`: decode, call the [`Registrar`], encode.
//!
//! Every RPC is the same steps: decode the request into a [`Change`],
//! record it under the request's id and fingerprint (SHA-256 of the request
//! as received), pass the audit step, answer with the receipt.

use lienthong_proto::citizen::Address;
use lienthong_proto::{Date, Pid, name, v1};
use prost::Message;
use tonic::{Request, Response, Status};
use v1::registry_service_server::RegistryService;

use super::audited::{Access, Audited, hash_message};
use super::caller;
use super::convert::{self, pid};
use crate::error::{Error, Result};
use crate::registration::{
    Birth, CardIssue, Change, Death, Marriage, NameChange, Registrar, ResidenceChange,
    ResidenceKind, WriteRequest,
};
use crate::registry::Receipt;

/// The tonic service over a [`Registrar`].
pub struct RegistryApi {
    registrar: Registrar,
    audited: Audited,
}

/// A registry write request: its idempotency key and the citizens it names.
trait WriteMessage: Message {
    fn request_id(&self) -> &str;
    fn subjects(&self) -> Vec<&str>;
}

impl RegistryApi {
    /// Serves `registrar`, auditing through `audited`.
    pub(crate) fn new(registrar: Registrar, audited: Audited) -> Self {
        Self { registrar, audited }
    }

    /// Decodes `request` with `decode`, records the change, audits, and
    /// answers with the receipt wrapped by `answer`.
    async fn record<M: WriteMessage, C: Change, R: Message>(
        &self,
        request: Request<M>,
        decode: impl FnOnce(&M) -> Result<C>,
        answer: impl FnOnce(v1::RegistryReceipt) -> R,
    ) -> Result<Response<R>, Status> {
        let peer = caller(&request)?;
        let message = request.into_inner();
        let request_hash = hash_message(&message);
        let mut access = Access::new(C::OPERATION).request_id(message.request_id());
        for subject in message.subjects() {
            access = access.pid(subject);
        }
        let written = match decode(&message) {
            Ok(change) => {
                let write = WriteRequest {
                    request_id: message.request_id().to_owned(),
                    fingerprint: request_hash,
                };
                self.registrar.record(&peer.agency, write, change).await
            }
            Err(e) => Err(e),
        };
        let result = written.map(|w| {
            let r = receipt(w.receipt());
            access = std::mem::take(&mut access).pid(&r.pid);
            answer(r)
        });
        self.audited
            .seal(&peer.agency, access, request_hash, result)
            .await
    }
}

macro_rules! write_message {
    ($($message:ty => [$($pid:ident),*];)*) => {$(
        impl WriteMessage for $message {
            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn subjects(&self) -> Vec<&str> {
                vec![$(&self.$pid),*]
            }
        }
    )*};
}

write_message! {
    v1::RegisterBirthRequest => [father_pid, mother_pid];
    v1::RecordDeathRequest => [pid];
    v1::ChangeResidenceRequest => [pid];
    v1::ChangeNameRequest => [pid];
    v1::RecordMarriageRequest => [pid, spouse_pid];
    v1::IssueCardRequest => [pid];
}

fn receipt(r: &Receipt) -> v1::RegistryReceipt {
    v1::RegistryReceipt {
        request_id: r.request_id.clone(),
        pid: r.pid.to_string(),
        event_id: r.event_id.clone(),
        seq: r.seq,
        recorded_at: r.recorded_at.clone(),
        node: r.node.clone(),
    }
}

/// An optional Pid: empty means none.
fn optional_pid(text: &str, field: &str) -> Result<Option<Pid>> {
    if text.is_empty() {
        Ok(None)
    } else {
        pid(text, field).map(Some)
    }
}

fn required_date(d: Option<&v1::Date>, field: &str) -> Result<Date> {
    convert::date(d.ok_or_else(|| Error::invalid(field, "required"))?, field)
}

fn full_name(text: &str, field: &str) -> Result<String> {
    name::registered_form(text).map_err(|why| Error::invalid(field, why))
}

fn address(r: Option<&v1::Residence>, field: &str) -> Result<Address> {
    let r = r.ok_or_else(|| Error::invalid(field, "required"))?;
    let province = convert::province_code(&r.province_code, &format!("{field}.province_code"))?;
    let line = r
        .address_line
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if line.is_empty() || line.chars().count() > 200 || line.chars().any(char::is_control) {
        return Err(Error::invalid(
            format!("{field}.address_line"),
            "must be 1–200 characters without control characters",
        ));
    }
    Ok(Address {
        province: province.into(),
        line,
    })
}

/// A short free-text attribute (ethnicity, nationality), or `default`.
fn label(text: &str, field: &str, default: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(default.to_owned());
    }
    if text.chars().count() > 50 || text.chars().any(|c| c.is_control() || c.is_numeric()) {
        return Err(Error::invalid(field, "must be at most 50 letters"));
    }
    Ok(text.to_owned())
}

fn birth(r: &v1::RegisterBirthRequest) -> Result<Birth> {
    let sex = convert::sex(r.sex, "sex")?.ok_or_else(|| Error::invalid("sex", "required"))?;
    let birth_province = convert::province_code(&r.birth_province_code, "birth_province_code")?;
    let native_province = if r.native_province_code.is_empty() {
        birth_province
    } else {
        convert::province_code(&r.native_province_code, "native_province_code")?
    };
    Ok(Birth {
        full_name: full_name(&r.full_name, "full_name")?,
        date_of_birth: required_date(r.date_of_birth.as_ref(), "date_of_birth")?,
        sex,
        birth_province,
        native_province,
        ethnicity: label(&r.ethnicity, "ethnicity", "Kinh")?,
        nationality: label(&r.nationality, "nationality", "Việt Nam")?,
        father: optional_pid(&r.father_pid, "father_pid")?,
        mother: optional_pid(&r.mother_pid, "mother_pid")?,
        residence: r
            .permanent_residence
            .as_ref()
            .map(|a| address(Some(a), "permanent_residence"))
            .transpose()?,
    })
}

fn residence_kind(kind: i32) -> Result<ResidenceKind> {
    match v1::ResidenceKind::try_from(kind) {
        Ok(v1::ResidenceKind::Permanent) => Ok(ResidenceKind::Permanent),
        Ok(v1::ResidenceKind::Temporary) => Ok(ResidenceKind::Temporary),
        _ => Err(Error::invalid("kind", "must be PERMANENT or TEMPORARY")),
    }
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    async fn register_birth(
        &self,
        request: Request<v1::RegisterBirthRequest>,
    ) -> Result<Response<v1::RegisterBirthResponse>, Status> {
        self.record(request, birth, |r| v1::RegisterBirthResponse {
            receipt: Some(r),
        })
        .await
    }

    async fn record_death(
        &self,
        request: Request<v1::RecordDeathRequest>,
    ) -> Result<Response<v1::RecordDeathResponse>, Status> {
        self.record(
            request,
            |r| {
                Ok(Death {
                    pid: pid(&r.pid, "pid")?,
                    died_on: required_date(r.date_of_death.as_ref(), "date_of_death")?,
                })
            },
            |r| v1::RecordDeathResponse { receipt: Some(r) },
        )
        .await
    }

    async fn change_residence(
        &self,
        request: Request<v1::ChangeResidenceRequest>,
    ) -> Result<Response<v1::ChangeResidenceResponse>, Status> {
        self.record(
            request,
            |r| {
                Ok(ResidenceChange {
                    pid: pid(&r.pid, "pid")?,
                    kind: residence_kind(r.kind)?,
                    residence: address(r.residence.as_ref(), "residence")?,
                })
            },
            |r| v1::ChangeResidenceResponse { receipt: Some(r) },
        )
        .await
    }

    async fn change_name(
        &self,
        request: Request<v1::ChangeNameRequest>,
    ) -> Result<Response<v1::ChangeNameResponse>, Status> {
        self.record(
            request,
            |r| {
                Ok(NameChange {
                    pid: pid(&r.pid, "pid")?,
                    full_name: full_name(&r.full_name, "full_name")?,
                })
            },
            |r| v1::ChangeNameResponse { receipt: Some(r) },
        )
        .await
    }

    async fn record_marriage(
        &self,
        request: Request<v1::RecordMarriageRequest>,
    ) -> Result<Response<v1::RecordMarriageResponse>, Status> {
        self.record(
            request,
            |r| {
                Ok(Marriage {
                    pid: pid(&r.pid, "pid")?,
                    spouse: pid(&r.spouse_pid, "spouse_pid")?,
                    married_on: required_date(r.married_on.as_ref(), "married_on")?,
                })
            },
            |r| v1::RecordMarriageResponse { receipt: Some(r) },
        )
        .await
    }

    async fn issue_card(
        &self,
        request: Request<v1::IssueCardRequest>,
    ) -> Result<Response<v1::IssueCardResponse>, Status> {
        self.record(
            request,
            |r| {
                Ok(CardIssue {
                    pid: pid(&r.pid, "pid")?,
                    issued_on: required_date(r.issued_on.as_ref(), "issued_on")?,
                })
            },
            |r| v1::IssueCardResponse { receipt: Some(r) },
        )
        .await
    }
}
