//! The checks, in the order the module lists them. Each call is bounded by
//! the deadline (and a connection by the same), so the kit never hangs on
//! an adapter that does not answer.

use std::time::{Duration, Instant};

use lienthong_proto::adapter::v1::sector_adapter_service_client::SectorAdapterServiceClient;
use lienthong_proto::adapter::v1::{DescribeRequest, LookupRequest, Population};
use lienthong_proto::pki::{adapter_server_name, ca_cert};
use lienthong_proto::v1::sector_answer::Answer;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{Check, ConformanceOptions, Outcome};

/// The adapter service's full name, as health reports it.
const SERVICE: &str = "lienthong.adapter.v1.SectorAdapterService";

/// A malformed Pid: eleven digits.
const MALFORMED: &str = "00108900000";

/// Runs every check against the adapter `opts` names.
pub async fn run(opts: &ConformanceOptions) -> Vec<Check> {
    let mut kit = Kit {
        opts,
        checks: Vec::new(),
        slowest: Duration::ZERO,
    };
    kit.tls().await;
    match kit.channel(Client::Gateway).await {
        Ok(channel) => {
            kit.health(channel.clone()).await;
            let queries = kit.describe(channel.clone()).await;
            kit.lookups(channel, &queries).await;
            let slowest = kit.slowest;
            kit.check(
                "deadline",
                if slowest <= opts.deadline {
                    Outcome::Pass(format!(
                        "slowest answer {} ms (deadline {} ms)",
                        slowest.as_millis(),
                        opts.deadline.as_millis()
                    ))
                } else {
                    Outcome::Fail(format!(
                        "an answer took {} ms: the gateway gives up after {} ms",
                        slowest.as_millis(),
                        opts.deadline.as_millis()
                    ))
                },
            );
        }
        Err(e) => kit.check(
            "connect",
            Outcome::Fail(format!("with the gateway's certificate: {e}")),
        ),
    }
    kit.checks
}

/// Whose client certificate a connection presents.
enum Client {
    /// The gateway's (`gateway-client.pem`).
    Gateway,
    /// None.
    Anonymous,
    /// A certificate and key (PEM).
    Other(String, String),
}

struct Kit<'a> {
    opts: &'a ConformanceOptions,
    checks: Vec<Check>,
    /// The slowest answer seen.
    slowest: Duration,
}

impl Kit<'_> {
    fn check(&mut self, name: &str, outcome: Outcome) {
        self.checks.push(Check {
            name: name.to_owned(),
            outcome,
        });
    }

    /// A connection to the adapter as the gateway makes one, presenting
    /// `client`'s certificate.
    async fn channel(&self, client: Client) -> Result<Channel, String> {
        let pki = &self.opts.pki_dir;
        let read = |name: &str| {
            std::fs::read_to_string(pki.join(name))
                .map_err(|e| format!("{}: {e}", pki.join(name).display()))
        };
        let ca = std::fs::read_to_string(ca_cert(pki))
            .map_err(|e| format!("{}: {e}", ca_cert(pki).display()))?;
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(adapter_server_name(&self.opts.sector));
        match client {
            Client::Gateway => {
                tls = tls.identity(Identity::from_pem(
                    read("gateway-client.pem")?,
                    read("gateway-client.key")?,
                ));
            }
            Client::Anonymous => {}
            Client::Other(cert, key) => tls = tls.identity(Identity::from_pem(cert, key)),
        }
        Channel::from_shared(self.opts.endpoint.clone())
            .map_err(|e| format!("--endpoint: {e}"))?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect_timeout(self.opts.deadline)
            .timeout(self.opts.deadline)
            .connect()
            .await
            .map_err(|e| format!("{e}: {}", source_chain(&e)))
    }

    /// Whether a Lookup through a connection presenting `client` is
    /// answered: `Ok(())` if refused (the handshake or the call), else what
    /// came back.
    async fn refused(&self, client: Client) -> Result<String, String> {
        let Ok(channel) = self.channel(client).await else {
            return Ok("the handshake failed".into());
        };
        let known = self.opts.known.first().cloned().unwrap_or_default();
        let request = LookupRequest {
            pid: known,
            query: first_query(&self.opts.sector),
            population: None,
        };
        match SectorAdapterServiceClient::new(channel)
            .lookup(request)
            .await
        {
            Ok(_) => Err("a Lookup was answered".into()),
            Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => Err(format!(
                "a Lookup was looked at ({:?}), not refused",
                s.code()
            )),
            Err(s) => Ok(format!("refused ({:?})", s.code())),
        }
    }

    async fn tls(&mut self) {
        let anonymous = self.refused(Client::Anonymous).await;
        self.check("tls-requires-client-cert", pass_if_refused(anonymous));
        let stranger = match stranger() {
            Ok((cert, key)) => pass_if_refused(self.refused(Client::Other(cert, key)).await),
            Err(e) => Outcome::Fail(format!("could not make a certificate to try: {e}")),
        };
        self.check("tls-refuses-other-ca", stranger);
        let other = match self.other_client() {
            Some((cert, key)) => pass_if_refused(self.refused(Client::Other(cert, key)).await),
            None => Outcome::Skip(
                "no other certificate of the gateway's CA to try: give the gateway's PKI \
                 directory (probe.pem, or ca.key)"
                    .into(),
            ),
        };
        self.check("tls-refuses-other-client", other);
    }

    /// A client certificate of the gateway's CA that is not the gateway's:
    /// the health probe's.
    fn other_client(&self) -> Option<(String, String)> {
        let pki = &self.opts.pki_dir;
        let cert = std::fs::read_to_string(pki.join("probe.pem")).ok()?;
        let key = std::fs::read_to_string(pki.join("probe.key")).ok()?;
        Some((cert, key))
    }

    async fn health(&mut self, channel: Channel) {
        let mut health = HealthClient::new(channel);
        let mut seen = Vec::new();
        for service in ["", SERVICE] {
            let started = Instant::now();
            let answer = health
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await;
            self.slowest = self.slowest.max(started.elapsed());
            match answer.map(|a| a.into_inner().status()) {
                Ok(ServingStatus::Serving) => seen.push(format!("{service:?} SERVING")),
                Ok(other) => {
                    return self.check(
                        "health",
                        Outcome::Fail(format!("{service:?} is {other:?}, not SERVING")),
                    );
                }
                Err(s) => {
                    return self.check(
                        "health",
                        Outcome::Fail(format!(
                            "grpc.health.v1 Check({service:?}): {:?} {}",
                            s.code(),
                            s.message()
                        )),
                    );
                }
            }
        }
        self.check("health", Outcome::Pass(seen.join(", ")));
    }

    /// Checks Describe; the queries to look up (the catalogue's for the
    /// sector, else what Describe declares).
    async fn describe(&mut self, channel: Channel) -> Vec<String> {
        let started = Instant::now();
        let answer = SectorAdapterServiceClient::new(channel)
            .describe(DescribeRequest {})
            .await;
        self.slowest = self.slowest.max(started.elapsed());
        let catalogue: Vec<String> = lienthong_proto::sector::by_name(&self.opts.sector)
            .map(|s| s.queries.iter().map(|q| (*q).to_owned()).collect())
            .unwrap_or_default();
        let d = match answer {
            Ok(d) => d.into_inner(),
            Err(s) => {
                self.check(
                    "describe",
                    Outcome::Fail(format!("{:?} {}", s.code(), s.message())),
                );
                return catalogue;
            }
        };
        let missing: Vec<&String> = catalogue
            .iter()
            .filter(|q| !d.queries.contains(q))
            .collect();
        let outcome = if d.sector != self.opts.sector {
            Outcome::Fail(format!(
                "names sector {:?}, not {:?}",
                d.sector, self.opts.sector
            ))
        } else if !missing.is_empty() {
            Outcome::Fail(format!("does not declare the queries {missing:?}"))
        } else if let Some((seed, citizens)) = self.opts.population
            && d.population != Some(Population { seed, citizens })
        {
            Outcome::Fail(format!(
                "names population {:?}, not seed {seed} and {citizens} citizens",
                d.population
            ))
        } else {
            Outcome::Pass(format!("sector {}, queries {:?}", d.sector, d.queries))
        };
        self.check("describe", outcome);
        if catalogue.is_empty() {
            d.queries
        } else {
            catalogue
        }
    }

    /// One Lookup, timed; its answer.
    async fn lookup(
        &mut self,
        client: &mut SectorAdapterServiceClient<Channel>,
        pid: &str,
        query: &str,
    ) -> Result<Option<Answer>, tonic::Status> {
        let population = self
            .opts
            .population
            .map(|(seed, citizens)| Population { seed, citizens });
        let started = Instant::now();
        let answer = client
            .lookup(LookupRequest {
                pid: pid.to_owned(),
                query: query.to_owned(),
                population,
            })
            .await;
        let took = match &answer {
            // Cut by the deadline: later than it, however long it took.
            Err(s) if matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled) => {
                self.opts.deadline + Duration::from_millis(1)
            }
            _ => started.elapsed(),
        };
        self.slowest = self.slowest.max(took);
        answer.map(|a| a.into_inner().answer.and_then(|a| a.answer))
    }

    async fn lookups(&mut self, channel: Channel, queries: &[String]) {
        let mut client = SectorAdapterServiceClient::new(channel);
        for query in queries {
            let want = answer_kind(&self.opts.sector, query);
            let (mut found, mut not_found) = (0, 0);
            let mut wrong = None;
            for pid in self.opts.known.clone() {
                match self.lookup(&mut client, &pid, query).await {
                    Ok(Some(answer)) if want.is_none_or(|w| w == kind(&answer)) => found += 1,
                    Ok(other) => {
                        wrong = Some(format!(
                            "{pid}: answered {:?}, not {}",
                            other.as_ref().map(kind),
                            want.unwrap_or("a typed answer")
                        ));
                        break;
                    }
                    Err(s) if s.code() == Code::NotFound => not_found += 1,
                    Err(s) => {
                        wrong = Some(format!("{pid}: {:?} {}", s.code(), s.message()));
                        break;
                    }
                }
            }
            let outcome = match wrong {
                Some(why) => Outcome::Fail(why),
                None if found == 0 => Outcome::Fail(format!(
                    "none of the {} known Pids was answered",
                    self.opts.known.len()
                )),
                None => Outcome::Pass(format!(
                    "{found} answered with {}, {not_found} NOT_FOUND",
                    want.unwrap_or("an answer")
                )),
            };
            self.check(&format!("lookup {query}"), outcome);
        }
        let query = queries.first().cloned().unwrap_or_default();
        let unknown = self.opts.unknown.clone();
        let outcome = match self.lookup(&mut client, &unknown, &query).await {
            Err(s) if s.code() == Code::NotFound => Outcome::Pass(format!("{unknown}: NOT_FOUND")),
            Err(s) => Outcome::Fail(format!("{unknown}: {:?}, not NOT_FOUND", s.code())),
            Ok(_) => Outcome::Fail(format!("{unknown}: answered, not NOT_FOUND")),
        };
        self.check("lookup-not-found", outcome);
        let outcome = match self.lookup(&mut client, MALFORMED, &query).await {
            Err(s) if s.code() == Code::InvalidArgument => {
                Outcome::Pass(format!("{MALFORMED:?}: INVALID_ARGUMENT"))
            }
            Err(s) => Outcome::Fail(format!(
                "{MALFORMED:?}: {:?}, not INVALID_ARGUMENT",
                s.code()
            )),
            Ok(_) => Outcome::Fail(format!("{MALFORMED:?}: answered, not INVALID_ARGUMENT")),
        };
        self.check("lookup-malformed", outcome);
    }
}

fn pass_if_refused(refused: Result<String, String>) -> Outcome {
    match refused {
        Ok(how) => Outcome::Pass(how),
        Err(what) => Outcome::Fail(what),
    }
}

/// The sector's first query in the catalogue (any text for an unknown
/// sector: the call is to be refused before it is read).
fn first_query(sector: &str) -> String {
    lienthong_proto::sector::by_name(sector)
        .and_then(|s| s.queries.first())
        .map_or_else(|| "record".to_owned(), |q| (*q).to_owned())
}

/// The answer a query's look-up gives, as `SectorAnswer` names it.
fn answer_kind(sector: &str, query: &str) -> Option<&'static str> {
    Some(match (sector, query) {
        ("social_insurance", "record") => "social_insurance_record",
        ("health", "insurance_card") => "health_insurance_card",
        ("health", "vaccinations") => "vaccinations",
        ("education", "record") => "education_record",
        ("telecom", "subscriptions") => "telecom_subscriptions",
        ("banking", "kyc_status") => "kyc_status",
        _ => return None,
    })
}

/// Which answer `answer` is.
fn kind(answer: &Answer) -> &'static str {
    match answer {
        Answer::SocialInsuranceRecord(_) => "social_insurance_record",
        Answer::HealthInsuranceCard(_) => "health_insurance_card",
        Answer::Vaccinations(_) => "vaccinations",
        Answer::EducationRecord(_) => "education_record",
        Answer::TelecomSubscriptions(_) => "telecom_subscriptions",
        Answer::KycStatus(_) => "kyc_status",
    }
}

/// A client certificate from a CA made here, which no adapter trusts.
fn stranger() -> Result<(String, String), rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "lienthong conformance stranger CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, lienthong_proto::pki::GATEWAY_CN);
    let cert = params.signed_by(&key, &issuer)?;
    drop(ca_cert);
    Ok((cert.pem(), key.serialize_pem()))
}

/// The causes of a transport error, joined.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push(cause.to_string());
        next = cause.source();
    }
    out.join(": ")
}
