//! Consent through the real gateway: the identity provider grants and
//! revokes, the hospital presents the token, and every bad token is refused
//! with its own reason.

use std::time::Duration;

use lienthong_proto::v1;
use tonic::Code;

use crate::support::{TestGateway, in_secs, reason};

fn ask(
    pid: &str,
    purpose: &str,
    fields: &[v1::CitizenField],
    token: &str,
) -> v1::GetCitizenRequest {
    v1::GetCitizenRequest {
        purpose: purpose.into(),
        pid: pid.into(),
        fields: fields.iter().map(|f| *f as i32).collect(),
        consent_token: token.into(),
    }
}

fn grant(
    pid: &str,
    agency: &str,
    purpose: &str,
    fields: &[v1::CitizenField],
    expires_at: String,
) -> v1::GrantConsentRequest {
    v1::GrantConsentRequest {
        citizen_pid: pid.into(),
        agency: agency.into(),
        purpose: purpose.into(),
        fields: fields.iter().map(|f| *f as i32).collect(),
        expires_at,
    }
}

#[tokio::test]
async fn consent_gated_fields_need_a_token_and_each_bad_token_has_its_reason() {
    use v1::CitizenField::{BloodType, FullName, Spouse};
    let gw = TestGateway::start().await;
    let me = format!("{:012}", gw.find(|c| c.spouse != 0).pid);
    let other = format!("{:012}", gw.find(|c| c.spouse == 0).pid);
    let mut idp = gw.citizen("idp").await;
    let mut hospital = gw.client("hospital").await;
    let refusal = |r: Result<tonic::Response<v1::GetCitizenResponse>, tonic::Status>| {
        let s = r.expect_err("refused");
        assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
        reason(&s)
    };

    // Fields that need no consent, and the same request with a gated field.
    hospital
        .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[FullName], ""))
        .await
        .unwrap();
    assert_eq!(
        refusal(
            hospital
                .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[FullName, Spouse], ""))
                .await
        ),
        "CONSENT_REQUIRED"
    );

    // Granted by the citizen through the identity provider: now it passes.
    let consent = idp
        .grant_consent(grant(
            &me,
            "hospital",
            "MEDICAL_TREATMENT",
            &[Spouse],
            in_secs(3600),
        ))
        .await
        .unwrap()
        .into_inner();
    let token = consent.token.clone();
    let answer = hospital
        .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[FullName, Spouse], &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.values.len(), 2);

    // Every other use of it is refused, each with its own reason.
    assert_eq!(
        refusal(
            hospital
                .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[Spouse, BloodType], &token))
                .await
        ),
        "CONSENT_FIELDS_NOT_COVERED"
    );
    assert_eq!(
        refusal(
            hospital
                .get_citizen(ask(&other, "MEDICAL_TREATMENT", &[Spouse], &token))
                .await
        ),
        "CONSENT_WRONG_CITIZEN"
    );
    let research = idp
        .grant_consent(grant(
            &me,
            "hospital",
            "RESEARCH",
            &[BloodType],
            in_secs(3600),
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    assert_eq!(
        refusal(
            hospital
                .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[BloodType], &research))
                .await
        ),
        "CONSENT_WRONG_PURPOSE"
    );
    let for_b = idp
        .grant_consent(grant(
            &me,
            "hospital-b",
            "MEDICAL_TREATMENT",
            &[BloodType],
            in_secs(3600),
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut hospital_b = gw.client("hospital-b").await;
    hospital_b
        .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[BloodType], &for_b))
        .await
        .unwrap();
    assert_eq!(
        refusal(
            hospital
                .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[BloodType], &for_b))
                .await
        ),
        "CONSENT_WRONG_AGENCY"
    );
    // Forged: the claims edited (another field added), the signature kept.
    let (body, signature) = token.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(body).unwrap()).unwrap();
    claims["fields"] = serde_json::json!(["blood_type", "spouse"]);
    let forged = format!(
        "{}.{signature}",
        b64.encode(serde_json::to_vec(&claims).unwrap())
    );
    for bad in [forged.as_str(), "junk", "a.b"] {
        assert_eq!(
            refusal(
                hospital
                    .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[BloodType], bad))
                    .await
            ),
            "CONSENT_INVALID",
            "{bad}"
        );
    }

    // Revoked: refused from then on; another citizen cannot revoke it.
    let not_theirs = idp
        .revoke_consent(v1::RevokeConsentRequest {
            citizen_pid: other.clone(),
            consent_id: consent.consent_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (not_theirs.code(), reason(&not_theirs).as_str()),
        (Code::NotFound, "CONSENT_NOT_FOUND")
    );
    let revoked = idp
        .revoke_consent(v1::RevokeConsentRequest {
            citizen_pid: me.clone(),
            consent_id: consent.consent_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!revoked.revoked_at.is_empty());
    assert_eq!(
        refusal(
            hospital
                .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[Spouse], &token))
                .await
        ),
        "CONSENT_REVOKED"
    );

    // Expired: a consent for two seconds, refused once they have passed.
    let brief = idp
        .grant_consent(grant(
            &me,
            "hospital",
            "MEDICAL_TREATMENT",
            &[Spouse],
            in_secs(2),
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    hospital
        .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[Spouse], &brief))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match hospital
            .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[Spouse], &brief))
            .await
        {
            Ok(_) => assert!(tokio::time::Instant::now() < deadline, "never expired"),
            Err(s) => {
                assert_eq!(reason(&s), "CONSENT_EXPIRED");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn only_the_identity_provider_grants_and_only_what_the_policy_grants() {
    use v1::CitizenField::{Religion, Spouse};
    let gw = TestGateway::start().await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    let not_idp = gw
        .citizen("hospital")
        .await
        .grant_consent(grant(
            &me,
            "hospital",
            "MEDICAL_TREATMENT",
            &[Spouse],
            in_secs(60),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (not_idp.code(), reason(&not_idp).as_str()),
        (Code::PermissionDenied, "ROLE_NOT_PERMITTED")
    );
    let mut idp = gw.citizen("idp").await;
    // Nor may anyone else withdraw a citizen's consent.
    let granted = idp
        .grant_consent(grant(
            &me,
            "hospital",
            "MEDICAL_TREATMENT",
            &[Spouse],
            in_secs(60),
        ))
        .await
        .unwrap()
        .into_inner();
    let not_idp = gw
        .citizen("hospital")
        .await
        .revoke_consent(v1::RevokeConsentRequest {
            citizen_pid: me.clone(),
            consent_id: granted.consent_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (not_idp.code(), reason(&not_idp).as_str()),
        (Code::PermissionDenied, "ROLE_NOT_PERMITTED")
    );
    let still_good = gw
        .client("hospital")
        .await
        .get_citizen(ask(&me, "MEDICAL_TREATMENT", &[Spouse], &granted.token))
        .await;
    assert!(still_good.is_ok(), "{still_good:?}");
    for (request, field) in [
        (
            grant(
                &me,
                "hospital",
                "MEDICAL_TREATMENT",
                &[Religion],
                in_secs(60),
            ),
            "fields",
        ),
        (
            grant(&me, "hospital", "MARKETING", &[Spouse], in_secs(60)),
            "purpose",
        ),
        (
            grant(&me, "nobody", "MEDICAL_TREATMENT", &[Spouse], in_secs(60)),
            "agency",
        ),
        (
            grant(
                &me,
                "hospital",
                "MEDICAL_TREATMENT",
                &[Spouse],
                in_secs(-60),
            ),
            "expires_at",
        ),
        (
            grant(
                &me,
                "hospital",
                "MEDICAL_TREATMENT",
                &[Spouse],
                in_secs(400 * 86_400),
            ),
            "expires_at",
        ),
        (
            grant(
                &me,
                "hospital",
                "MEDICAL_TREATMENT",
                &[Spouse],
                "next week".into(),
            ),
            "expires_at",
        ),
    ] {
        let s = idp.grant_consent(request).await.unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        assert_eq!(crate::support::bad_fields(&s), [field], "{s:?}");
    }
    let unknown = format!("{}", gw.unknown_pid());
    let s = idp
        .grant_consent(grant(
            &unknown,
            "hospital",
            "MEDICAL_TREATMENT",
            &[Spouse],
            in_secs(60),
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&s), "CITIZEN_NOT_FOUND");
}
