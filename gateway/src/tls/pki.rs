//! The development PKI `lienthong certs` creates, laid out as clients expect:
//!
//! ```text
//! DIR/pki/ca.pem, ca.key                 the development CA
//! DIR/pki/gateway.pem, gateway.key       server: localhost, 127.0.0.1
//! DIR/pki/agencies/<agency-id>.pem, .key client: CN = agency id
//! DIR/pki/probe.pem, probe.key           client: the health probe
//! DIR/pki/gateway-client.pem, .key       client: the gateway calling the
//!                                        sector adapters (CN lienthong-gateway)
//! DIR/pki/adapters/<sector>.pem, .key    server: <sector>.adapter.lienthong,
//!                                        localhost, 127.0.0.1
//! DIR/pki/bundles/<sector>/              what that adapter needs and nothing
//!     ca.pem, adapters/<sector>.pem/.key more (copies): the PKI directory to
//!                                        give an adapter deployed apart
//! ```
//!
//! Existing files are kept: running it again only adds what is missing (a
//! new agency in the policy, say). Keys are written owner-readable only.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use lienthong_proto::pki::{GATEWAY_CN, adapter_server_name};
pub use lienthong_proto::pki::{PROBE_CN as PROBE, RESERVED_CNS};

use crate::error::{Error, Result};

/// Paths of the development PKI under a directory.
#[derive(Debug, Clone)]
pub struct PkiLayout {
    /// `DIR/pki`.
    pub root: PathBuf,
}

impl PkiLayout {
    /// The layout under `dir/pki`.
    pub fn under(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("pki"),
        }
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// The CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }

    /// The gateway's certificate.
    pub fn gateway_cert(&self) -> PathBuf {
        self.root.join("gateway.pem")
    }

    /// The gateway's key.
    pub fn gateway_key(&self) -> PathBuf {
        self.root.join("gateway.key")
    }

    /// The health probe's client certificate (`lienthong health`): issued
    /// by the CA to no agency, so it reaches health and reflection only.
    pub fn probe_cert(&self) -> PathBuf {
        self.root.join("probe.pem")
    }

    /// The health probe's key.
    pub fn probe_key(&self) -> PathBuf {
        self.root.join("probe.key")
    }

    /// The gateway's client certificate, for calling the adapters.
    pub fn gateway_client_cert(&self) -> PathBuf {
        self.root.join("gateway-client.pem")
    }

    /// The gateway's client key.
    pub fn gateway_client_key(&self) -> PathBuf {
        self.root.join("gateway-client.key")
    }

    /// The server certificate of `sector`'s adapter.
    pub fn adapter_cert(&self, sector: &str) -> PathBuf {
        lienthong_proto::pki::adapter_cert(&self.root, sector)
    }

    /// The server key of `sector`'s adapter.
    pub fn adapter_key(&self, sector: &str) -> PathBuf {
        lienthong_proto::pki::adapter_key(&self.root, sector)
    }

    /// The PKI directory an adapter deployed apart gets: the CA's
    /// certificate and its own certificate and key, no other secret.
    pub fn adapter_bundle(&self, sector: &str) -> PathBuf {
        self.root.join("bundles").join(sector)
    }

    /// An agency's certificate.
    pub fn agency_cert(&self, agency: &str) -> PathBuf {
        self.root.join("agencies").join(format!("{agency}.pem"))
    }

    /// An agency's key.
    pub fn agency_key(&self, agency: &str) -> PathBuf {
        self.root.join("agencies").join(format!("{agency}.key"))
    }
}

/// What [`ensure_pki`] created.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PkiReport {
    /// Files written, in order.
    pub created: Vec<PathBuf>,
}

fn tls_err(e: rcgen::Error) -> Error {
    Error::Tls(e.to_string())
}

/// Creates whatever is missing of the CA, the gateway certificate, the
/// health probe's client certificate, the gateway's client certificate and
/// the sector adapters' certificates, and one client certificate per agency
/// id.
pub fn ensure_pki<'a>(
    layout: &PkiLayout,
    agencies: impl IntoIterator<Item = &'a str>,
) -> Result<PkiReport> {
    let mut report = PkiReport::default();
    crate::private::create_dir(&layout.root.join("agencies")).map_err(Error::io(&layout.root))?;
    crate::private::create_dir(&layout.root.join("adapters")).map_err(Error::io(&layout.root))?;
    let (issuer, new_ca) = ensure_ca(layout, &mut report)?;
    let mut pki = Issuing {
        issuer,
        new_ca,
        report,
    };
    let localhost = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    pki.server(
        (&layout.gateway_cert(), &layout.gateway_key()),
        &localhost,
        "lienthong gateway",
    )?;
    pki.client((&layout.probe_cert(), &layout.probe_key()), PROBE)?;
    pki.client(
        (&layout.gateway_client_cert(), &layout.gateway_client_key()),
        GATEWAY_CN,
    )?;
    for sector in lienthong_proto::sector::names() {
        let mut names = vec![adapter_server_name(sector)];
        names.extend(localhost.iter().cloned());
        pki.server(
            (&layout.adapter_cert(sector), &layout.adapter_key(sector)),
            &names,
            &format!("lienthong {sector} adapter"),
        )?;
        bundle_adapter(layout, sector, &mut pki.report)?;
    }
    for agency in agencies {
        pki.client(
            (&layout.agency_cert(agency), &layout.agency_key(agency)),
            agency,
        )?;
    }
    Ok(pki.report)
}

/// The development CA of `layout`, created if it has none: its issuer, and
/// whether it is new.
fn ensure_ca(
    layout: &PkiLayout,
    report: &mut PkiReport,
) -> Result<(Issuer<'static, KeyPair>, bool)> {
    if layout.ca_cert().exists() && layout.ca_key().exists() {
        let key = KeyPair::from_pem(&read(&layout.ca_key())?).map_err(tls_err)?;
        let issuer = Issuer::from_ca_cert_pem(&read(&layout.ca_cert())?, key).map_err(tls_err)?;
        return Ok((issuer, false));
    }
    let key = KeyPair::generate().map_err(tls_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    params.distinguished_name = dn("lienthong development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).map_err(tls_err)?;
    write(&layout.ca_cert(), &cert.pem(), false, report)?;
    write(&layout.ca_key(), &key.serialize_pem(), true, report)?;
    Ok((Issuer::new(params, key), true))
}

/// Issuing what is missing under one CA.
struct Issuing {
    issuer: Issuer<'static, KeyPair>,
    /// A new CA reissues everything: certificates signed by a CA that is
    /// gone are useless.
    new_ca: bool,
    report: PkiReport,
}

impl Issuing {
    fn missing(&self, (cert, key): (&Path, &Path)) -> bool {
        self.new_ca || !cert.exists() || !key.exists()
    }

    /// A client certificate with subject CN `cn` at `files`, if missing.
    fn client(&mut self, files: (&Path, &Path), cn: &str) -> Result<()> {
        if !self.missing(files) {
            return Ok(());
        }
        let (cert, key) = issue_client(&self.issuer, cn)?;
        write(files.0, &cert, false, &mut self.report)?;
        write(files.1, &key, true, &mut self.report)
    }

    /// A server certificate for `names` with subject CN `cn` at `files`, if
    /// missing.
    fn server(&mut self, files: (&Path, &Path), names: &[String], cn: &str) -> Result<()> {
        if !self.missing(files) {
            return Ok(());
        }
        let key = KeyPair::generate().map_err(tls_err)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(tls_err)?;
        params.distinguished_name = dn(cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(tls_err)?;
        write(files.0, &cert.pem(), false, &mut self.report)?;
        write(files.1, &key.serialize_pem(), true, &mut self.report)
    }
}

/// Copies what `sector`'s adapter needs (the CA's certificate, its own
/// certificate and key) into its bundle, where they differ.
fn bundle_adapter(layout: &PkiLayout, sector: &str, report: &mut PkiReport) -> Result<()> {
    let bundle = PkiLayout {
        root: layout.adapter_bundle(sector),
    };
    crate::private::create_dir(&bundle.root.join("adapters")).map_err(Error::io(&bundle.root))?;
    for (from, to, secret) in [
        (layout.ca_cert(), bundle.ca_cert(), false),
        (
            layout.adapter_cert(sector),
            bundle.adapter_cert(sector),
            false,
        ),
        (layout.adapter_key(sector), bundle.adapter_key(sector), true),
    ] {
        let contents = read(&from)?;
        if fs::read_to_string(&to).ok().as_deref() != Some(contents.as_str()) {
            write(&to, &contents, secret, report)?;
        }
    }
    Ok(())
}

/// Writes the gateway's public signing key where the consumers of its
/// events find it: beside the CA, and in each adapter's bundle. Only what
/// differs is written.
pub fn publish_signing_key(
    layout: &PkiLayout,
    key: &crate::signing::VerifyingKey,
) -> Result<PkiReport> {
    let mut report = PkiReport::default();
    let text = format!("{key}\n");
    let mut places = vec![lienthong_proto::pki::gateway_signing_key(&layout.root)];
    for sector in lienthong_proto::sector::names() {
        let bundle = layout.adapter_bundle(sector);
        if bundle.is_dir() {
            places.push(lienthong_proto::pki::gateway_signing_key(&bundle));
        }
    }
    for path in places {
        if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            write(&path, &text, false, &mut report)?;
        }
    }
    Ok(report)
}

/// Issues a client certificate with subject CN `agency`: (cert PEM, key PEM).
pub fn issue_client(issuer: &Issuer<'_, KeyPair>, agency: &str) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(tls_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    params.distinguished_name = dn(agency);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).map_err(tls_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "lienthong");
    dn.push(DnType::CommonName, cn);
    dn
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(Error::io(path))
}

/// Writes a PEM file; a `secret` (a key) is created owner-only from the
/// start, never readable by others even for a moment.
fn write(path: &Path, contents: &str, secret: bool, report: &mut PkiReport) -> Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = if secret { 0o600 } else { 0o644 };
        options.mode(mode);
        // An existing file keeps its mode through open(): set it too.
        if path.exists() {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(Error::io(path))?;
        }
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(Error::io(path))?;
    file.write_all(contents.as_bytes())
        .map_err(Error::io(path))?;
    report.created.push(path.to_path_buf());
    Ok(())
}
