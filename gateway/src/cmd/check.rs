//! `lienthong check`: validates a data directory without serving it — the
//! policy, the certificates the policy and the sector adapters need, the
//! signing key, the registry's integrity and the audit chain — and says
//! exactly what is wrong.
//!
//! ```text
//! ok       policy.toml: 9 agencies
//! problem  pki/agencies/viettel.pem: missing (lienthong certs issues it)
//! ```

use std::path::Path;

use time::OffsetDateTime;
use x509_parser::pem::parse_x509_pem;

use super::{DataDir, StoreChoice};
use crate::policy::Policy;
use crate::signing::SigningKey;
use crate::tls::{PROBE, server_config};
use lienthong_proto::pki::GATEWAY_CN;

/// A certificate expiring sooner than this is reported.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Fine, with what was found.
    Ok(String),
    /// Works, but needs attention soon.
    Warning(String),
    /// Wrong: the gateway would refuse to start, or an agency to connect.
    Problem(String),
}

/// Checks `dir`, whose registry and audit log are where `store` says;
/// every finding, in the order checked.
pub fn check(dir: &DataDir, store: &StoreChoice) -> Vec<Finding> {
    let mut found = Vec::new();
    let policy = match Policy::load(&dir.policy()) {
        Ok(p) => {
            found.push(Finding::Ok(format!(
                "policy.toml: {} agencies",
                p.agencies.len()
            )));
            Some(p)
        }
        Err(e) => {
            found.push(Finding::Problem(e.to_string()));
            None
        }
    };
    let pki = dir.pki();
    match server_config(&pki) {
        Ok(_) => found.push(Finding::Ok(
            "pki: the CA and the gateway's certificate and key load (TLS 1.3, client certificates required)".into(),
        )),
        Err(e) => found.push(Finding::Problem(format!("pki: {e}"))),
    }
    let ca_subject = std::fs::read(pki.ca_cert()).ok().and_then(|pem| {
        let (_, pem) = parse_x509_pem(&pem).ok()?;
        let cert = pem.parse_x509().ok()?;
        Some(cert.subject().to_string())
    });
    found.push(certificate(
        dir,
        &pki.gateway_cert(),
        None,
        ca_subject.as_deref(),
    ));
    found.push(certificate(
        dir,
        &pki.probe_cert(),
        Some(PROBE),
        ca_subject.as_deref(),
    ));
    found.push(certificate(
        dir,
        &pki.gateway_client_cert(),
        Some(GATEWAY_CN),
        ca_subject.as_deref(),
    ));
    for sector in lienthong_proto::sector::names() {
        found.push(certificate(
            dir,
            &pki.adapter_cert(sector),
            None,
            ca_subject.as_deref(),
        ));
    }
    if let Some(policy) = &policy {
        let mut agencies: Vec<&String> = policy.agencies.keys().collect();
        agencies.sort();
        for agency in agencies {
            found.push(certificate(
                dir,
                &pki.agency_cert(agency),
                Some(agency),
                ca_subject.as_deref(),
            ));
        }
    }
    if pki.ca_key().exists() {
        found.push(Finding::Warning(
            "pki/ca.key: the CA's private key lies in a data directory serve uses; \
             a real deployment keeps it offline (serve never reads it)"
                .into(),
        ));
    }
    match store {
        StoreChoice::Embedded => {
            found.push(registry_integrity(dir));
            if dir.has_served() {
                found.push(audit_chain(dir));
            }
        }
        StoreChoice::Postgres(url) => found.push(shared_audit(dir, url)),
    }
    let key = dir.signing_key();
    found.push(if key.exists() {
        match SigningKey::load(&key) {
            Ok(k) => Finding::Ok(format!(
                "keys/signing.pk8: Ed25519, public key {}",
                k.verifying_key()
            )),
            Err(e) => Finding::Problem(e.to_string()),
        }
    } else {
        Finding::Ok("keys/signing.pk8: not yet created (serve creates it on first start)".into())
    });
    found
}

/// SQLite's own check of every page and index of the registry.
fn registry_integrity(dir: &DataDir) -> Finding {
    let path = dir.registry();
    if !path.exists() {
        return Finding::Ok("registry.db: not yet created (serve seeds it on first start)".into());
    }
    let checked =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|conn| {
                let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
                let said = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(said)
            });
    match checked {
        Ok(said) if said == ["ok"] => Finding::Ok("registry.db: integrity check passed".into()),
        Ok(said) => Finding::Problem(format!(
            "registry.db: damaged ({}); restore it from a backup",
            said.join("; ")
        )),
        Err(e) => Finding::Problem(format!(
            "registry.db: cannot be read ({e}); restore it from a backup"
        )),
    }
}

/// The audit chain walked as `lienthong audit verify` walks it.
fn audit_chain(dir: &DataDir) -> Finding {
    match super::audit_verify(dir, None, None) {
        Ok((report, _)) => match report.problem {
            None if report.set_aside.is_empty() => Finding::Ok(format!(
                "audit/: {} records chained, {} signed checkpoints",
                report.records, report.checkpoints
            )),
            None => Finding::Problem(format!(
                "audit/: chained, but {} file(s) of bytes were set aside at a start \
                 (lienthong audit verify lists them; move them away once inspected)",
                report.set_aside.len()
            )),
            Some(problem) => Finding::Problem(format!("audit/: {problem}")),
        },
        Err(e) => Finding::Problem(format!("audit/: {e}")),
    }
}

/// Every replica's audit chain in the shared store, walked as `lienthong
/// audit verify --store` walks them (the registry there is the database's
/// to check).
fn shared_audit(dir: &DataDir, url: &str) -> Finding {
    match super::audit_verify_shared(dir, url, None, &[]) {
        Ok((chains, _)) => match chains.iter().find(|c| c.problem.is_some()) {
            None => Finding::Ok(format!(
                "audit (shared store): {} chains, {} records chained",
                chains.len(),
                chains.iter().map(|c| c.records).sum::<u64>()
            )),
            Some(chain) => Finding::Problem(format!("audit (shared store): {chain}")),
        },
        Err(e) => Finding::Problem(format!("audit (shared store): {e}")),
    }
}

/// Checks the certificate at `path`: it reads, was issued by the CA
/// (`ca_subject`), names `agency` (for an agency's), and is in its validity.
fn certificate(
    dir: &DataDir,
    path: &Path,
    agency: Option<&str>,
    ca_subject: Option<&str>,
) -> Finding {
    let shown = path
        .strip_prefix(dir.root())
        .unwrap_or(path)
        .display()
        .to_string();
    let Ok(pem) = std::fs::read(path) else {
        let missing = format!("{shown}: missing (lienthong certs issues it)");
        // Only the probe's absence leaves serving intact.
        return if agency == Some(PROBE) {
            Finding::Warning(missing)
        } else {
            Finding::Problem(missing)
        };
    };
    let Ok((_, pem)) = parse_x509_pem(&pem) else {
        return Finding::Problem(format!("{shown}: not a PEM certificate"));
    };
    let Ok(cert) = pem.parse_x509() else {
        return Finding::Problem(format!("{shown}: not an X.509 certificate"));
    };
    if let Some(ca) = ca_subject
        && cert.issuer().to_string() != ca
    {
        return Finding::Problem(format!(
            "{shown}: issued by {}, not by this gateway's CA",
            cert.issuer()
        ));
    }
    if let Some(agency) = agency {
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok());
        if cn != Some(agency) {
            return Finding::Problem(format!("{shown}: its subject CN is {cn:?}, not {agency:?}"));
        }
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let not_after = cert.validity().not_after.timestamp();
    if cert.validity().not_before.timestamp() > now {
        return Finding::Problem(format!("{shown}: not valid yet"));
    }
    if not_after <= now {
        return Finding::Problem(format!("{shown}: expired on {}", cert.validity().not_after));
    }
    let days = (not_after - now) / 86_400;
    if days < EXPIRY_WARNING_DAYS {
        Finding::Warning(format!("{shown}: expires in {days} days"))
    } else {
        Finding::Ok(format!("{shown}: valid for {days} more days"))
    }
}
