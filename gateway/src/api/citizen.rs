//! `lienthong.v1.CitizenService`: decode, call [`Consents`] or the
//! [`AccessList`], encode; every answer passes the audit step.

use lienthong_proto::v1::{self, citizen_service_server::CitizenService};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tonic::{Request, Response, Status};

use super::audited::{Access, Audited, hash_message};
use super::{caller, convert};
use crate::audit::{AccessList, Decision};
use crate::consent::{ConsentRequest, Consents};
use crate::error::{Error, Result};

/// The tonic service over the citizen's consents and access list.
pub struct CitizenApi {
    consents: Consents,
    accesses: AccessList,
    audited: Audited,
}

impl CitizenApi {
    /// Serves `consents` and `accesses`, auditing through `audited`.
    pub(crate) fn new(consents: Consents, accesses: AccessList, audited: Audited) -> Self {
        Self {
            consents,
            accesses,
            audited,
        }
    }

    async fn grant(
        &self,
        agency: &str,
        r: &v1::GrantConsentRequest,
    ) -> Result<v1::GrantConsentResponse> {
        let citizen = convert::pid(&r.citizen_pid, "citizen_pid")?;
        let fields = convert::fields(&r.fields)?;
        let expires_at = OffsetDateTime::parse(&r.expires_at, &Rfc3339).map_err(|_| {
            Error::invalid(
                "expires_at",
                "must be an RFC 3339 time, e.g. 2027-05-01T00:00:00Z",
            )
        })?;
        let granted = self
            .consents
            .grant(
                agency,
                &ConsentRequest {
                    citizen,
                    agency: &r.agency,
                    purpose: &r.purpose,
                    fields: &fields,
                    expires_at,
                },
            )
            .await?;
        Ok(v1::GrantConsentResponse {
            consent_id: granted.id,
            token: granted.token,
            expires_at: granted.expires_at,
        })
    }

    async fn list(
        &self,
        agency: &str,
        r: &v1::ListAccessesRequest,
    ) -> Result<v1::ListAccessesResponse> {
        let citizen = convert::pid(&r.citizen_pid, "citizen_pid")?;
        let page_size = usize::try_from(r.page_size)
            .map_err(|_| Error::invalid("page_size", "must not be negative"))?;
        let before = if r.page_token.is_empty() {
            None
        } else {
            Some(
                r.page_token
                    .parse::<u64>()
                    .map_err(|_| Error::invalid("page_token", "not a token from ListAccesses"))?,
            )
        };
        let page = self
            .accesses
            .list_off_runtime(agency, citizen, page_size, before)
            .await?;
        Ok(v1::ListAccessesResponse {
            accesses: page
                .accesses
                .into_iter()
                .map(|(a, agency_name)| v1::Access {
                    time: a.time,
                    agency: a.agency,
                    agency_name,
                    operation: a.operation,
                    purpose: a.purpose,
                    fields: a
                        .fields
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    decision: match a.decision {
                        Decision::Granted => v1::AccessDecision::Granted,
                        Decision::Refused => v1::AccessDecision::Refused,
                    } as i32,
                    outcome: a.outcome,
                    audit_seq: a.seq,
                    audit_node: a.node,
                })
                .collect(),
            next_page_token: page.next.map(|s| s.to_string()).unwrap_or_default(),
        })
    }
}

#[tonic::async_trait]
impl CitizenService for CitizenApi {
    async fn grant_consent(
        &self,
        request: Request<v1::GrantConsentRequest>,
    ) -> Result<Response<v1::GrantConsentResponse>, Status> {
        let peer = caller(&request)?;
        let r = request.into_inner();
        let access = Access::new("grant_consent")
            .purpose(&r.purpose)
            .pid(&r.citizen_pid)
            .fields(
                convert::fields(&r.fields)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| f.name()),
            );
        let answer = self.grant(&peer.agency, &r).await;
        // The consent's id, so that its revocation's record (whose request
        // id it is) can be matched to this one.
        let access = match &answer {
            Ok(granted) => access.request_id(&granted.consent_id),
            Err(_) => access,
        };
        self.audited
            .seal(&peer.agency, access, hash_message(&r), answer)
            .await
    }

    async fn revoke_consent(
        &self,
        request: Request<v1::RevokeConsentRequest>,
    ) -> Result<Response<v1::RevokeConsentResponse>, Status> {
        let peer = caller(&request)?;
        let r = request.into_inner();
        let access = Access::new("revoke_consent")
            .pid(&r.citizen_pid)
            .request_id(&r.consent_id);
        let answer = match convert::pid(&r.citizen_pid, "citizen_pid") {
            Ok(citizen) => self
                .consents
                .revoke(&peer.agency, citizen, &r.consent_id)
                .await
                .map(|revoked_at| v1::RevokeConsentResponse { revoked_at }),
            Err(e) => Err(e),
        };
        self.audited
            .seal(&peer.agency, access, hash_message(&r), answer)
            .await
    }

    async fn list_accesses(
        &self,
        request: Request<v1::ListAccessesRequest>,
    ) -> Result<Response<v1::ListAccessesResponse>, Status> {
        let peer = caller(&request)?;
        let r = request.into_inner();
        let access = Access::new("list_accesses").pid(&r.citizen_pid);
        let answer = self.list(&peer.agency, &r).await;
        self.audited
            .seal(&peer.agency, access, hash_message(&r), answer)
            .await
    }
}
