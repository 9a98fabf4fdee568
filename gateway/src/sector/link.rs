//! One sector adapter as the gateway reaches it: a lazily connected mTLS
//! channel, a bound on calls in flight, a deadline and a circuit breaker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lienthong_proto::Pid;
use lienthong_proto::adapter::v1::sector_adapter_service_client::SectorAdapterServiceClient;
use lienthong_proto::adapter::v1::{LookupRequest, Population};
use lienthong_proto::v1::SectorAnswer;
use tokio::sync::Semaphore;
use tonic::Code;
use tonic::transport::Channel;

use super::breaker::Breaker;
use crate::error::{Error, Result};
use crate::telemetry::{SECTOR_AVAILABLE, SECTOR_CALLS};

/// Failures in a row that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
/// How long an open circuit refuses calls before a trial.
const COOLDOWN: Duration = Duration::from_millis(500);

/// One adapter.
pub(crate) struct SectorLink {
    sector: &'static str,
    /// The registry's population, sent with every look-up.
    population: Option<Population>,
    client: SectorAdapterServiceClient<Channel>,
    breaker: Mutex<Breaker>,
    permits: Arc<Semaphore>,
    deadline: Duration,
}

impl SectorLink {
    pub(crate) fn new(sector: &'static str, channel: Channel, opts: &super::SectorOptions) -> Self {
        let (deadline, max_in_flight) = (opts.deadline, opts.max_in_flight);
        metrics::gauge!(SECTOR_AVAILABLE, "sector" => sector).set(1.0);
        Self {
            sector,
            population: opts
                .population
                .map(|(seed, citizens)| Population { seed, citizens }),
            client: SectorAdapterServiceClient::new(channel),
            breaker: Mutex::new(Breaker::new(FAILURES_TO_OPEN, COOLDOWN)),
            permits: Arc::new(Semaphore::new(max_in_flight)),
            deadline,
        }
    }

    fn unavailable(&self, why: String, retry_after: Duration) -> Error {
        Error::SectorUnavailable {
            sector: self.sector,
            why,
            retry_after,
        }
    }

    fn report(&self, ok: bool, outcome: &'static str) {
        metrics::counter!(SECTOR_CALLS, "sector" => self.sector, "outcome" => outcome).increment(1);
        let mut breaker = self.breaker.lock().expect("breaker");
        if ok {
            breaker.success();
        } else {
            breaker.failure(Instant::now());
        }
        let available = if breaker.is_closed() { 1.0 } else { 0.0 };
        metrics::gauge!(SECTOR_AVAILABLE, "sector" => self.sector).set(available);
    }

    /// Asks the adapter `query` about `pid`, within the deadline.
    pub(crate) async fn lookup(&self, query: &str, pid: Pid) -> Result<SectorAnswer> {
        let admitted = self.breaker.lock().expect("breaker").admit(Instant::now());
        if let Err(retry_after) = admitted {
            metrics::counter!(SECTOR_CALLS, "sector" => self.sector, "outcome" => "refused")
                .increment(1);
            return Err(self.unavailable(
                "the adapter failed repeatedly; calls resume after a pause".into(),
                retry_after,
            ));
        }
        // No queue: a call over the bound is refused at once.
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            metrics::counter!(SECTOR_CALLS, "sector" => self.sector, "outcome" => "refused")
                .increment(1);
            return Err(self.unavailable(
                "too many calls to the adapter are in flight".into(),
                Duration::from_millis(100),
            ));
        };
        let mut request = tonic::Request::new(LookupRequest {
            pid: pid.to_string(),
            query: query.to_owned(),
            population: self.population,
        });
        request.set_timeout(self.deadline);
        let mut client = self.client.clone();
        let answered = tokio::time::timeout(self.deadline, client.lookup(request)).await;
        let retry = Duration::from_secs(1);
        match answered {
            Err(_) => {
                self.report(false, "timeout");
                Err(self.unavailable(
                    format!("no answer within {} ms", self.deadline.as_millis()),
                    retry,
                ))
            }
            Ok(Ok(response)) => {
                self.report(true, "ok");
                response.into_inner().answer.ok_or_else(|| {
                    self.unavailable("the adapter sent an empty answer".into(), retry)
                })
            }
            Ok(Err(status)) if status.code() == Code::NotFound => {
                self.report(true, "not_found");
                Err(Error::SectorRecordNotFound {
                    sector: self.sector,
                })
            }
            // The adapter answered, and says the question is wrong: that is
            // no sign of a sick adapter, and must not open the circuit for
            // every other caller.
            Ok(Err(status)) if status.code() == Code::InvalidArgument => {
                self.report(true, "refused_query");
                Err(Error::invalid(
                    "query",
                    format!("the {} sector does not answer this query", self.sector),
                ))
            }
            Ok(Err(status)) if status.code() == Code::FailedPrecondition => {
                self.report(false, "failed");
                Err(self.unavailable(
                    "the adapter serves another population than the registry's (seed, citizens); \
                     restart it with the gateway's"
                        .into(),
                    Duration::from_secs(60),
                ))
            }
            Ok(Err(status)) if status.code() == Code::DeadlineExceeded => {
                self.report(false, "timeout");
                Err(self.unavailable(
                    format!("no answer within {} ms", self.deadline.as_millis()),
                    retry,
                ))
            }
            Ok(Err(status)) => {
                self.report(false, "failed");
                // The code only: the adapter's message is its own business.
                Err(self.unavailable(format!("the adapter answered {:?}", status.code()), retry))
            }
        }
    }
}
