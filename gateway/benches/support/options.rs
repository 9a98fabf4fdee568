//! The exchange bench's command line.

/// What the bench is asked to measure.
pub struct Options {
    /// Citizens on the registry (seeded once per size).
    pub citizens: u64,
    /// Seconds each server is measured, per phase.
    pub seconds: u64,
    /// `unary`, `batch` or `all`.
    pub phase: String,
    /// VerifyIdentity calls in flight, spread over the channels.
    pub in_flight: usize,
    /// Client connections to each server, as that many agencies would
    /// open (all of them with the bench agency's certificate).
    pub channels: usize,
    /// Rounds of every phase, one after the other (the medians are printed).
    pub rounds: usize,
    /// Names as an operator writes them, matched PARTIAL (`--names written`).
    pub written_names: bool,
    /// A PostgreSQL database for a fourth server, the gateway over the
    /// shared store (`--store postgres://…`).
    pub store: Option<String>,
}

/// The median of `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The options given on the command line, defaults for the rest.
pub fn options() -> Options {
    let mut o = Options {
        citizens: 1_000_000,
        seconds: 10,
        phase: "all".into(),
        in_flight: 64,
        channels: 1,
        rounds: 1,
        written_names: false,
        store: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--citizens" => o.citizens = args[i + 1].parse().expect("--citizens N"),
            "--seconds" => o.seconds = args[i + 1].parse().expect("--seconds S"),
            "--phase" => o.phase = args[i + 1].clone(),
            "--in-flight" => o.in_flight = args[i + 1].parse().expect("--in-flight N"),
            "--channels" => {
                o.channels = args[i + 1]
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .expect("--channels N (1 or more)")
            }
            "--rounds" => o.rounds = args[i + 1].parse().expect("--rounds N"),
            "--store" => o.store = Some(args[i + 1].clone()),
            "--names" => {
                o.written_names = match args[i + 1].as_str() {
                    "registered" => false,
                    "written" => true,
                    _ => panic!("--names registered|written"),
                }
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}
