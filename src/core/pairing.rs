//! Pairing a lamp with its owner's account, as smart TVs do: the lamp shows a short code, the
//! owner types it into the web portal, and the portal sends the lamp the association, which the
//! lamp accepts only for its current, unexpired code.
//!
//! Codes are 8 symbols from a 31-symbol alphabet without look-alikes (no 0/O, 1/I/L): 31⁸ ≈
//! 8.5 × 10¹¹ codes. A code lives 60 s on the monotonic clock (a wall-clock jump neither
//! extends nor cuts it) and is burnt after one success or five wrong tries, so a guesser
//! succeeds with probability at most 5 / 31⁸ ≈ 6 × 10⁻¹² per code shown.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

pub const ALPHABET: &[u8; 31] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const CODE_LENGTH: usize = 8;
pub const CODE_LIFE: Duration = Duration::from_secs(60);
pub const MAX_WRONG_TRIES: u8 = 5;
pub const MAX_OWNER_CHARS: usize = 64;
/// Used codes remembered, so a replayed association is told so.
const USED_MEMORY: usize = 8;

/// Whom the lamp belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub name: String,
}

/// Why an association was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NoCode,
    Expired,
    AlreadyUsed,
    WrongCode { tries_left: u8 },
    TooManyTries,
    InvalidOwner(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoCode => write!(f, "no pairing code is active; ask the lamp for a new one"),
            Refusal::Expired => write!(f, "the code has expired; ask the lamp for a new one"),
            Refusal::AlreadyUsed => write!(f, "the code was already used"),
            Refusal::WrongCode { tries_left } => write!(f, "wrong code ({tries_left} tries left)"),
            Refusal::TooManyTries => write!(f, "wrong code; too many tries, so the code is burnt"),
            Refusal::InvalidOwner(reason) => write!(f, "{reason}"),
        }
    }
}

#[derive(Clone, Debug)]
struct ActiveCode {
    code: String,
    expires: Instant,
    wrong: u8,
}

#[derive(Clone, Debug, Default)]
pub struct Pairing {
    owner: Option<Owner>,
    active: Option<ActiveCode>,
    used: VecDeque<String>,
    /// The last code that ran out of time, so that someone typing it late hears why it fails.
    expired: Option<String>,
}

/// A code as people read it: `ABCD-EFGH`.
pub fn display(code: &str) -> String {
    let (head, tail) = code.split_at(code.len() / 2);
    format!("{head}-{tail}")
}

/// A code as typed: case, spaces and dashes do not matter.
pub fn normalise(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// Compares in time independent of where the codes differ.
fn same_code(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl Owner {
    /// Checks an owner sent by the cloud.
    pub fn new(id: &str, name: &str) -> Result<Owner, Refusal> {
        let fits = |s: &str| !s.chars().any(char::is_control) && s.chars().count() <= MAX_OWNER_CHARS;
        if id.is_empty() || !fits(id) || !fits(name) {
            return Err(Refusal::InvalidOwner(format!(
                "owner: id must be 1–{MAX_OWNER_CHARS} characters and name at most {MAX_OWNER_CHARS}, without control characters"
            )));
        }
        Ok(Owner {
            id: id.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl Pairing {
    pub fn new(owner: Option<Owner>) -> Pairing {
        Pairing {
            owner,
            ..Pairing::default()
        }
    }

    pub fn owner(&self) -> Option<&Owner> {
        self.owner.as_ref()
    }

    /// A fresh code, replacing any active one. `rng` must be a CSPRNG (the shell passes the
    /// operating system's).
    pub fn new_code(&mut self, rng: &mut impl rand::CryptoRng, now: Instant) -> String {
        let code: String = (0..CODE_LENGTH)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        self.active = Some(ActiveCode {
            code: code.clone(),
            expires: now + CODE_LIFE,
            wrong: 0,
        });
        code
    }

    /// The active code and when it expires.
    pub fn active(&self) -> Option<(&str, Instant)> {
        self.active.as_ref().map(|a| (a.code.as_str(), a.expires))
    }

    /// Drops the code once its minute is over; true if it just went.
    pub fn expire(&mut self, now: Instant) -> bool {
        if self.active.as_ref().is_some_and(|a| now >= a.expires) {
            self.expired = self.active.take().map(|a| a.code);
            return true;
        }
        false
    }

    pub fn next_wake(&self) -> Option<Instant> {
        self.active.as_ref().map(|a| a.expires)
    }

    fn burn(&mut self) {
        if let Some(active) = self.active.take() {
            self.used.push_back(active.code);
            if self.used.len() > USED_MEMORY {
                self.used.pop_front();
            }
        }
    }

    /// The cloud says `owner` typed `code` for this lamp. Accepted only for the current,
    /// unexpired code; the code is then burnt.
    pub fn associate(&mut self, code: &str, owner: Owner, now: Instant) -> Result<(), Refusal> {
        let typed = normalise(code);
        let Some(active) = self.active.as_mut() else {
            return Err(if self.used.iter().any(|used| same_code(used, &typed)) {
                Refusal::AlreadyUsed
            } else if self
                .expired
                .as_deref()
                .is_some_and(|expired| same_code(expired, &typed))
            {
                Refusal::Expired
            } else {
                Refusal::NoCode
            });
        };
        if now >= active.expires {
            self.expire(now);
            return Err(Refusal::Expired);
        }
        if !same_code(&active.code, &typed) {
            active.wrong += 1;
            if active.wrong >= MAX_WRONG_TRIES {
                self.burn();
                return Err(Refusal::TooManyTries);
            }
            return Err(Refusal::WrongCode {
                tries_left: MAX_WRONG_TRIES - active.wrong,
            });
        }
        self.burn();
        self.owner = Some(owner);
        Ok(())
    }

    /// Forgets the owner; returns who it was.
    pub fn unpair(&mut self) -> Option<Owner> {
        self.owner.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn alice() -> Owner {
        Owner::new("alice", "Alice").unwrap()
    }

    #[test]
    fn a_code_lives_exactly_a_minute() {
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let mut pairing = Pairing::default();
        let code = pairing.new_code(&mut rng, t0);
        assert_eq!(code.len(), CODE_LENGTH);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(pairing.next_wake(), Some(t0 + CODE_LIFE));
        assert!(!pairing.expire(t0 + CODE_LIFE - Duration::from_millis(1)));
        assert!(pairing.expire(t0 + CODE_LIFE));
        assert_eq!(pairing.active(), None);
        assert_eq!(pairing.associate(&code, alice(), t0 + CODE_LIFE), Err(Refusal::Expired));
        assert_eq!(
            pairing.associate("ABCDEFGH", alice(), t0 + CODE_LIFE),
            Err(Refusal::NoCode)
        );

        // Associating at the very instant of expiry is too late, a millisecond before is not.
        let code = pairing.new_code(&mut rng, t0);
        assert_eq!(pairing.associate(&code, alice(), t0 + CODE_LIFE), Err(Refusal::Expired));
        let code = pairing.new_code(&mut rng, t0);
        let just_in_time = t0 + CODE_LIFE - Duration::from_millis(1);
        assert_eq!(
            pairing.associate(&display(&code).to_lowercase(), alice(), just_in_time),
            Ok(())
        );
        assert_eq!(pairing.owner(), Some(&alice()));
    }

    #[test]
    fn a_new_code_replaces_the_old_and_success_burns_it() {
        let mut rng = StdRng::seed_from_u64(2);
        let t0 = Instant::now();
        let mut pairing = Pairing::default();
        let old = pairing.new_code(&mut rng, t0);
        let new = pairing.new_code(&mut rng, t0 + Duration::from_secs(30));
        assert_ne!(old, new);
        assert_eq!(
            pairing.associate(&old, alice(), t0 + Duration::from_secs(31)),
            Err(Refusal::WrongCode { tries_left: 4 })
        );
        // The replacement lives its own full minute.
        let late = t0 + Duration::from_secs(89);
        assert_eq!(pairing.associate(&new, alice(), late), Ok(()));
        assert_eq!(pairing.associate(&new, alice(), late), Err(Refusal::AlreadyUsed));
    }

    #[test]
    fn five_wrong_tries_burn_the_code() {
        let mut rng = StdRng::seed_from_u64(3);
        let t0 = Instant::now();
        let mut pairing = Pairing::default();
        let code = pairing.new_code(&mut rng, t0);
        for tries_left in (1..=4).rev() {
            assert_eq!(
                pairing.associate("ZZZZZZZZ", alice(), t0),
                Err(Refusal::WrongCode { tries_left })
            );
        }
        assert_eq!(pairing.associate("ZZZZZZZZ", alice(), t0), Err(Refusal::TooManyTries));
        assert_eq!(pairing.associate(&code, alice(), t0), Err(Refusal::AlreadyUsed));
        assert_eq!(pairing.owner(), None);
    }

    #[test]
    fn owners_are_checked_and_unpairing_forgets() {
        assert!(Owner::new("", "x").is_err());
        assert!(Owner::new("a", &"n".repeat(65)).is_err());
        assert!(Owner::new("a\u{7}", "x").is_err());
        let mut pairing = Pairing::new(Some(alice()));
        assert_eq!(pairing.unpair(), Some(alice()));
        assert_eq!(pairing.unpair(), None);
    }

    #[test]
    fn codes_are_uniform_over_the_alphabet_and_do_not_repeat() {
        // The operating system's generator, as the lamp uses it.
        let mut rng = rand::TryRngCore::unwrap_err(rand::rngs::OsRng);
        let t0 = Instant::now();
        let mut pairing = Pairing::default();
        let mut counts = [0u64; 31];
        let mut seen = std::collections::HashSet::new();
        const CODES: usize = 100_000;
        for _ in 0..CODES {
            let code = pairing.new_code(&mut rng, t0);
            for b in code.bytes() {
                counts[ALPHABET.iter().position(|&a| a == b).unwrap()] += 1;
            }
            seen.insert(code);
        }
        // Chi-squared with 30 degrees of freedom: above 59.7 happens with probability 0.001.
        let expected = (CODES * CODE_LENGTH) as f64 / 31.0;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        assert!(
            chi2 < 59.7,
            "symbol frequencies are skewed: chi² = {chi2:.1}, {counts:?}"
        );
        // Birthday bound: 10⁵ codes among 31⁸ collide with probability about 0.6 %; allow one.
        assert!(CODES - seen.len() <= 1, "{} repeats", CODES - seen.len());
    }
}
