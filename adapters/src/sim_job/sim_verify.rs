//! The SIM-verification job: a whole subscriber base re-verified through the
//! gateway's `VerifyBatch`, resumable.
//!
//! ```text
//! pass 1   read the base: count SIMs per Pid → which lines are over the limit
//! pass 2   reader ──batches (≤ in_flight unanswered)──▶ VerifyBatch stream
//!                                                           │ answers, in order
//!          junk.csv ◀── outcome per subscriber ◀────────────┘
//!          state.json (checkpoint: lines done, counts, junk.csv length)
//! ```
//!
//! A checkpoint is written after the junk file is flushed, so after any stop
//! (Ctrl-C, SIGKILL) a rerun truncates `junk.csv` to the checkpoint, skips
//! the lines already done and ends with the report an uninterrupted run
//! gives. Files in the output directory:
//!
//! ```text
//! junk.csv      line,msisdn,outcome   every subscriber not verified
//! summary.json  counts per outcome, invalid lines, records/s, duration
//! state.json    the checkpoint
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_proto::v1::{
    self, claim_result::Outcome as Wire, exchange_service_client::ExchangeServiceClient,
};
use lienthong_proto::{Pid, Sex};
use tokio::sync::{Semaphore, mpsc};
use tonic::transport::Channel;

use super::outcome::Outcome;
use super::subscriber::{Format, LineError, Subscriber};
use crate::error::{Error, Result};

/// How to run the job.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// The subscriber base (CSV with header, or JSONL).
    pub input: PathBuf,
    /// Where junk.csv, summary.json and state.json go.
    pub out_dir: PathBuf,
    /// SIMs one person may hold.
    pub limit: u32,
    /// Subscribers per batch (at most 10,000).
    pub batch: usize,
    /// Batches sent and not yet answered, at most.
    pub in_flight: usize,
    /// Purpose code for the gateway.
    pub purpose: String,
    /// Time between checkpoints (zero: after every batch).
    pub checkpoint_every: Duration,
}

/// What a (finished) run found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Data lines in the input.
    pub subscribers: u64,
    /// Lines that could not be read (each reported with its line number).
    pub invalid_lines: u64,
    /// Subscribers per outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Wall time of the run(s), in seconds.
    pub seconds: f64,
    /// Subscribers per second over that time.
    pub records_per_second: f64,
    /// Data lines already done by earlier runs when the last run started
    /// (0 for a run that was never interrupted).
    pub resumed_from: u64,
}

impl Summary {
    /// Whether anything but verified subscribers was found.
    pub fn found_junk(&self) -> bool {
        self.invalid_lines > 0
            || self
                .outcomes
                .iter()
                .any(|(k, v)| k != Outcome::Verified.name() && *v > 0)
    }
}

/// The checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct State {
    /// Length of the input when the job started: another input is refused.
    input_len: u64,
    /// Data lines fully processed.
    lines_done: u64,
    /// Length of junk.csv covering exactly those lines.
    junk_len: u64,
    invalid_lines: u64,
    outcomes: BTreeMap<String, u64>,
    /// Seconds spent in earlier runs.
    seconds: f64,
    complete: bool,
}

/// Reports of unreadable lines and progress, for the caller to show.
pub trait JobObserver: Send + 'static {
    /// A line could not be read; the job goes on.
    fn invalid_line(&mut self, error: &LineError);
    /// `done` of `total` subscribers are processed.
    fn progress(&mut self, done: u64, total: u64);
}

/// Pass 1: the data lines (0-based) whose SIM is beyond `limit` for its Pid,
/// by registration date (then line order); and the number of data lines.
fn over_limit_lines(input: &Path, format: Format, limit: u32) -> Result<(Vec<bool>, u64)> {
    let file = File::open(input).map_err(Error::io(input))?;
    let mut sims: Vec<(u64, u32, u32)> = Vec::new();
    let mut lines = 0u64;
    for (n, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
        let line = line.map_err(Error::io(input))?;
        if n == 0 && format == Format::Csv {
            continue;
        }
        if let Ok(s) = Subscriber::parse(format, n as u64 + 1, &line)
            && let Ok(pid) = s.pid.parse::<Pid>()
        {
            sims.push((pid.as_u64(), s.registered_on.to_yyyymmdd(), lines as u32));
        }
        lines += 1;
    }
    sims.sort_unstable();
    let mut over = vec![false; lines as usize];
    let mut rank = 0;
    for (i, (pid, _, line)) in sims.iter().enumerate() {
        rank = if i > 0 && sims[i - 1].0 == *pid {
            rank + 1
        } else {
            0
        };
        if rank >= limit {
            over[*line as usize] = true;
        }
    }
    Ok((over, lines))
}

/// One data line on its way through the gateway.
enum Entry {
    /// Sent as a claim.
    Claim {
        line: u64,
        msisdn: String,
        over: bool,
    },
    /// Unreadable: reported, counted, not sent.
    Invalid { line: u64 },
}

/// The outcome for one answered claim.
fn outcome_of(result: &v1::ClaimResult, over: bool) -> Outcome {
    match &result.outcome {
        // Dates, sex and name are checked here before sending, so the only
        // claim the gateway can refuse is one whose Pid is malformed.
        Some(Wire::Error(_)) | None => Outcome::MalformedPid,
        Some(Wire::Verification(v)) => {
            let failed =
                |f: v1::ClaimedField| v.fields.iter().any(|r| r.field() == f && !r.matched);
            if v.verdict() == v1::Verdict::NotFound {
                Outcome::UnknownPid
            } else if v.holder_status() == v1::HolderStatus::Deceased {
                Outcome::Deceased
            } else if failed(v1::ClaimedField::FullName) {
                Outcome::NameMismatch
            } else if failed(v1::ClaimedField::DateOfBirth) {
                Outcome::DateMismatch
            } else if failed(v1::ClaimedField::Sex) {
                Outcome::SexMismatch
            } else if over {
                Outcome::OverLimit
            } else {
                Outcome::Verified
            }
        }
    }
}

/// Closes a semaphore when dropped, failing every wait on it.
struct CloseOnDrop(Arc<Semaphore>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(Error::io(&tmp))?;
    f.write_all(bytes).map_err(Error::io(&tmp))?;
    f.sync_all().map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

/// Runs (or resumes) the job against the gateway on `channel`.
pub async fn run(
    opts: &JobOptions,
    channel: Channel,
    mut observer: impl JobObserver,
) -> Result<Summary> {
    if opts.batch == 0 || opts.batch > 10_000 || opts.in_flight == 0 {
        return Err(Error::Usage(
            "--batch must be 1–10000 and --in-flight at least 1".into(),
        ));
    }
    let started = Instant::now();
    std::fs::create_dir_all(&opts.out_dir).map_err(Error::io(&opts.out_dir))?;
    let out = Outputs::in_dir(&opts.out_dir);
    let input_len = std::fs::metadata(&opts.input)
        .map_err(Error::io(&opts.input))?
        .len();
    let format = Format::of(&opts.input);
    let mut state = State::load(&out.state, input_len)?;
    if state.complete {
        let bytes = std::fs::read(&out.summary).map_err(Error::io(&out.summary))?;
        return serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
            path: out.summary,
            message: e.to_string(),
        });
    }
    let resumed_from = state.lines_done;
    let (over, total) = over_limit_lines(&opts.input, format, opts.limit)?;
    let mut junk = out.open_junk(&mut state)?;

    // The reader: lines → batches, each holding a permit until answered.
    let permits = Arc::new(Semaphore::new(opts.in_flight));
    // However this function returns, the reader must not wait for a permit
    // forever (the runtime would wait for it in turn).
    let _release_reader = CloseOnDrop(permits.clone());
    let (requests_tx, requests_rx) = mpsc::channel::<v1::VerifyBatchRequest>(opts.in_flight);
    let (entries_tx, mut entries_rx) = mpsc::channel::<Vec<Entry>>(opts.in_flight + 1);
    let (invalid_tx, mut invalid_rx) = mpsc::unbounded_channel::<LineError>();
    let reader = Reader {
        input: opts.input.clone(),
        format,
        over,
        batch: opts.batch,
        purpose: opts.purpose.clone(),
        skip: state.lines_done,
        permits: permits.clone(),
        requests: requests_tx,
        entries: entries_tx,
        invalid: invalid_tx,
    };
    let reader = tokio::task::spawn_blocking(move || reader.read());

    let mut client = ExchangeServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut answers = client
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(requests_rx))
        .await
        .map_err(|s| Error::Gateway(s.to_string()))?
        .into_inner();
    let mut last_checkpoint = Instant::now();
    while let Some(entries) = entries_rx.recv().await {
        while let Ok(e) = invalid_rx.try_recv() {
            observer.invalid_line(&e);
        }
        let answer = answers
            .message()
            .await
            .map_err(|s| Error::Gateway(s.to_string()))?
            .ok_or_else(|| Error::Gateway("the answer stream ended early".into()))?;
        permits.add_permits(1);
        out.record(&entries, &answer, &mut junk, &mut state)?;
        observer.progress(state.lines_done, total);
        if last_checkpoint.elapsed() >= opts.checkpoint_every {
            out.checkpoint(&mut state, &mut junk, false)?;
            last_checkpoint = Instant::now();
        }
    }
    while let Ok(e) = invalid_rx.try_recv() {
        observer.invalid_line(&e);
    }
    reader
        .await
        .map_err(|_| Error::Usage("the input reader failed".into()))??;

    state.seconds += started.elapsed().as_secs_f64();
    let summary = Summary {
        subscribers: total,
        invalid_lines: state.invalid_lines,
        outcomes: state.outcomes.clone(),
        seconds: state.seconds,
        records_per_second: total as f64 / state.seconds.max(1e-9),
        resumed_from,
    };
    let bytes = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Usage(e.to_string()))?;
    write_atomically(&out.summary, &bytes)?;
    out.checkpoint(&mut state, &mut junk, true)?;
    Ok(summary)
}

impl State {
    /// The checkpoint at `path`, or a fresh start if there is none; one of
    /// another input (of another length) is refused.
    fn load(path: &Path, input_len: u64) -> Result<Self> {
        let Ok(bytes) = std::fs::read(path) else {
            return Ok(Self {
                input_len,
                lines_done: 0,
                junk_len: 0,
                invalid_lines: 0,
                outcomes: BTreeMap::new(),
                seconds: 0.0,
                complete: false,
            });
        };
        let state: Self = serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if state.input_len != input_len {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                message: "it belongs to another input; remove it or choose another --out".into(),
            });
        }
        Ok(state)
    }
}

/// The job's files in its output directory.
struct Outputs {
    state: PathBuf,
    junk: PathBuf,
    summary: PathBuf,
}

impl Outputs {
    fn in_dir(dir: &Path) -> Self {
        Self {
            state: dir.join("state.json"),
            junk: dir.join("junk.csv"),
            summary: dir.join("summary.json"),
        }
    }

    /// junk.csv, cut back to exactly what the checkpoint covers (its header
    /// alone on a fresh start), open for appending.
    fn open_junk(&self, state: &mut State) -> Result<BufWriter<File>> {
        let io = Error::io(&self.junk);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&self.junk)
            .map_err(Error::io(&self.junk))?;
        if state.junk_len == 0 {
            file.set_len(0).map_err(Error::io(&self.junk))?;
            file.write_all(b"line,msisdn,outcome\n")
                .map_err(Error::io(&self.junk))?;
            state.junk_len = 20;
        }
        file.set_len(state.junk_len)
            .map_err(Error::io(&self.junk))?;
        file.seek(std::io::SeekFrom::End(0)).map_err(io)?;
        Ok(BufWriter::new(file))
    }

    /// Records one batch's answer: each subscriber not verified (and each
    /// unreadable line) in junk.csv, every outcome counted.
    fn record(
        &self,
        entries: &[Entry],
        answer: &v1::VerifyBatchResponse,
        junk: &mut BufWriter<File>,
        state: &mut State,
    ) -> Result<()> {
        let mut results = answer.results.iter();
        for entry in entries {
            match entry {
                Entry::Invalid { line } => {
                    writeln!(junk, "{line},,invalid_line").map_err(Error::io(&self.junk))?;
                    state.invalid_lines += 1;
                }
                Entry::Claim { line, msisdn, over } => {
                    let result = results
                        .next()
                        .ok_or_else(|| Error::Gateway("an answer is missing results".into()))?;
                    let outcome = outcome_of(result, *over);
                    if outcome != Outcome::Verified {
                        writeln!(junk, "{line},{msisdn},{outcome}")
                            .map_err(Error::io(&self.junk))?;
                    }
                    *state.outcomes.entry(outcome.name().to_owned()).or_default() += 1;
                }
            }
        }
        state.lines_done += entries.len() as u64;
        Ok(())
    }

    /// Makes junk.csv durable, then the checkpoint that covers it.
    fn checkpoint(
        &self,
        state: &mut State,
        junk: &mut BufWriter<File>,
        complete: bool,
    ) -> Result<()> {
        junk.flush().map_err(Error::io(&self.junk))?;
        junk.get_ref().sync_data().map_err(Error::io(&self.junk))?;
        state.junk_len = junk
            .get_ref()
            .metadata()
            .map_err(Error::io(&self.junk))?
            .len();
        state.complete = complete;
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::Usage(e.to_string()))?;
        write_atomically(&self.state, &bytes)
    }
}

/// Reads the base on a blocking thread and sends it as batches, each taking
/// a permit that its answer gives back.
struct Reader {
    input: PathBuf,
    format: Format,
    /// Which lines are over the limit (pass 1).
    over: Vec<bool>,
    batch: usize,
    purpose: String,
    /// Lines already done (a resumed run).
    skip: u64,
    permits: Arc<Semaphore>,
    requests: mpsc::Sender<v1::VerifyBatchRequest>,
    entries: mpsc::Sender<Vec<Entry>>,
    invalid: mpsc::UnboundedSender<LineError>,
}

impl Reader {
    /// Reads every line after the ones done; stops early if the job does.
    fn read(self) -> Result<()> {
        let file = File::open(&self.input).map_err(Error::io(&self.input))?;
        let mut lines = BufReader::with_capacity(1 << 20, file).lines().enumerate();
        if self.format == Format::Csv {
            lines.next();
        }
        let mut claims = Vec::with_capacity(self.batch);
        let mut entries = Vec::with_capacity(self.batch);
        let mut batch_no = 0u64;
        for (index, (n, line)) in lines.enumerate() {
            let index = index as u64;
            if index < self.skip {
                continue;
            }
            let line = line.map_err(Error::io(&self.input))?;
            let line_no = n as u64 + 1;
            match Subscriber::parse(self.format, line_no, &line) {
                Ok(mut s) => {
                    entries.push(Entry::Claim {
                        line: line_no,
                        msisdn: std::mem::take(&mut s.msisdn),
                        over: self.over[index as usize],
                    });
                    claims.push(claim_of(s));
                }
                Err(e) => {
                    entries.push(Entry::Invalid { line: line_no });
                    let _ = self.invalid.send(e);
                }
            }
            if entries.len() == self.batch && !self.send(&mut batch_no, &mut claims, &mut entries) {
                return Ok(());
            }
        }
        if !entries.is_empty() {
            self.send(&mut batch_no, &mut claims, &mut entries);
        }
        Ok(())
    }

    /// Sends one batch once a permit is free; whether the job still takes
    /// batches.
    fn send(
        &self,
        batch_no: &mut u64,
        claims: &mut Vec<v1::IdentityClaim>,
        entries: &mut Vec<Entry>,
    ) -> bool {
        let Ok(permit) =
            tokio::runtime::Handle::current().block_on(self.permits.clone().acquire_owned())
        else {
            return false;
        };
        permit.forget(); // given back when the batch is answered
        *batch_no += 1;
        let request = v1::VerifyBatchRequest {
            batch_id: batch_no.to_string(),
            purpose: self.purpose.clone(),
            r#match: Some(v1::MatchOptions {
                // Accents and case folded, letters exact: a misspelling is a mismatch.
                strategy: v1::MatchStrategy::Partial as i32,
                threshold: 100,
            }),
            claims: std::mem::take(claims),
        };
        self.entries.blocking_send(std::mem::take(entries)).is_ok()
            && self.requests.blocking_send(request).is_ok()
    }
}

/// The claim a subscriber makes: its Pid, name, date of birth and sex.
fn claim_of(s: Subscriber) -> v1::IdentityClaim {
    v1::IdentityClaim {
        reference: String::new(),
        pid: s.pid,
        full_name: Some(s.full_name),
        date_of_birth: Some(v1::Date {
            year: s.date_of_birth.year(),
            month: s.date_of_birth.month() as i32,
            day: s.date_of_birth.day() as i32,
        }),
        sex: match s.sex {
            Sex::Male => v1::Sex::Male,
            Sex::Female => v1::Sex::Female,
        } as i32,
        ..Default::default()
    }
}
