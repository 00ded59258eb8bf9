//! A latency histogram in microseconds, and its JSON form: a summary for people and `jq`, and
//! the whole histogram in HdrHistogram's V2+deflate format, base64, for merging. The summary is
//! recomputed from the histogram whenever it is written; read back, it is only checked.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// The longest latency kept apart, in µs (60 s); longer ones count as 60 s.
pub const HIGHEST_US: u64 = 60_000_000;

/// A latency distribution in microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency(Histogram<u64>);

impl Latency {
    /// For a whole run: 3 significant figures (a value is off by at most 0.1 %), ≈140 KiB.
    pub fn new() -> Self {
        Self::with_sigfig(3)
    }

    /// For one timeline interval: 2 significant figures (1 %), ≈17 KiB, as a run has many.
    pub fn interval() -> Self {
        Self::with_sigfig(2)
    }

    fn with_sigfig(sigfig: u8) -> Self {
        Self(Histogram::new_with_bounds(1, HIGHEST_US, sigfig).expect("1 < 60 s, sigfig ≤ 5"))
    }

    /// Counts a latency; one past [`HIGHEST_US`] counts as that.
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0.5 for the median), 0 when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        self.0.value_at_quantile(q)
    }

    pub fn max(&self) -> u64 {
        self.0.max()
    }

    /// Adds `other`'s counts: the distribution of both runs' samples, percentiles and all.
    pub fn add(&mut self, other: &Latency) -> Result<(), hdrhistogram::AdditionError> {
        self.0.add(&other.0)
    }

    fn encode(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .expect("a histogram within its bounds serialises into a Vec");
        STANDARD.encode(bytes)
    }

    fn decode(text: &str) -> Result<Self, String> {
        let bytes = STANDARD.decode(text).map_err(|e| format!("hdr is not base64: {e}"))?;
        let v2 = inflate_bounded(&bytes)?;
        check_v2_header(&v2)?;
        let histogram = Deserializer::new()
            .deserialize(&mut v2.as_slice())
            .map_err(|e| format!("hdr is not an HdrHistogram (V2+deflate): {e}"))?;
        Ok(Self(histogram))
    }
}

/// HdrHistogram's V2 cookies (with the word size, 0x10, of its Rust and Java writers).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
/// Cookie, payload length, normalising offset, digits, lowest, highest, conversion ratio.
const V2_HEADER_LEN: usize = 40;
/// Far above what any histogram within our bounds takes (≈17.4k counters, ≤ 9 bytes each).
const MAX_V2_LEN: u64 = 1 << 20;

/// The V2 histogram inside V2+deflate, refusing more than [`MAX_V2_LEN`] inflated bytes.
fn inflate_bounded(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (cookie, rest) = split_u32(bytes).ok_or("hdr is too short for an HdrHistogram")?;
    if cookie != V2_DEFLATE_COOKIE {
        return Err(format!("hdr is not an HdrHistogram V2+deflate (cookie {cookie:#x})"));
    }
    let (_, deflated) = split_u32(rest).ok_or("hdr is too short for an HdrHistogram")?;
    let mut v2 = Vec::new();
    flate2::read::ZlibDecoder::new(deflated)
        .take(MAX_V2_LEN + 1)
        .read_to_end(&mut v2)
        .map_err(|e| format!("hdr does not inflate: {e}"))?;
    if v2.len() as u64 > MAX_V2_LEN {
        return Err(format!("hdr inflates past {MAX_V2_LEN} bytes"));
    }
    Ok(v2)
}

/// Refuses a histogram of other bounds than the ones written here, and a payload length that
/// is not what follows: the deserialiser would allocate for either before reading a count.
fn check_v2_header(v2: &[u8]) -> Result<(), String> {
    let header = v2.get(..V2_HEADER_LEN).ok_or("hdr is too short for a V2 header")?;
    let word = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let long = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    if word(0) != V2_COOKIE {
        return Err(format!("hdr holds no V2 histogram (cookie {:#x})", word(0)));
    }
    let payload = word(4) as usize;
    if payload != v2.len() - V2_HEADER_LEN {
        return Err(format!(
            "hdr's payload length says {payload} bytes, but {} follow",
            v2.len() - V2_HEADER_LEN
        ));
    }
    let (digits, lowest, highest) = (word(12), long(16), long(24));
    if !(2..=3).contains(&digits) || lowest != 1 || highest != HIGHEST_US {
        return Err(format!(
            "hdr's bounds are 1..{HIGHEST_US} µs with 2 or 3 significant figures, not \
             {lowest}..{highest} with {digits}"
        ));
    }
    Ok(())
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (word, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*word), rest))
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// The JSON form. Percentiles are µs.
#[derive(Serialize, Deserialize)]
struct Json {
    count: u64,
    min: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
    hdr: String,
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Json {
            count: self.count(),
            min: self.0.min(),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
            mean: self.0.mean(),
            hdr: self.encode(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Json::deserialize(deserializer)?;
        let latency = Self::decode(&json.hdr).map_err(serde::de::Error::custom)?;
        // The summary is what a reader of the file saw; a histogram that disagrees with it was
        // edited or truncated, and merging it would give figures nobody measured.
        if latency.count() != json.count || latency.max() != json.max {
            return Err(serde::de::Error::custom(format!(
                "hdr holds {} samples up to {} µs, but count and max say {} and {}",
                latency.count(),
                latency.max(),
                json.count,
                json.max
            )));
        }
        Ok(latency)
    }
}
