//! The lamp's side of pairing: codes shown with their wall-clock expiry, the cloud's
//! association, unpairing, and their analytics events.

use std::time::Instant;

use super::{Lamp, PairingView, Refusal, UnpairSource};
use crate::core::analytics::Event;
use crate::core::pairing::{self, Owner};

impl Lamp {
    pub(super) fn pairing(&self) -> PairingView {
        PairingView {
            code: self
                .pairing
                .active()
                .map(|(code, _)| (code.to_owned(), self.code_expires_wall)),
            expires: self.pairing.next_wake(),
            owner: self.pairing.owner().cloned(),
        }
    }

    /// A new pairing code to show, replacing any other; it lives a minute.
    pub(super) fn request_code(&mut self, rng: &mut impl rand::CryptoRng, now: Instant, timestamp: u64) -> String {
        let code = self.pairing.new_code(rng, now);
        self.code_expires_wall = timestamp + pairing::CODE_LIFE.as_secs();
        code
    }

    /// The cloud's association of this lamp with `owner`, for the code the owner typed.
    pub(super) fn associate(
        &mut self,
        code: &str,
        owner: Owner,
        now: Instant,
        timestamp: u64,
    ) -> Result<Owner, Refusal> {
        match self.pairing.associate(code, owner.clone(), now) {
            Ok(()) => {
                self.report_due = true;
                self.events.push(
                    Event::Paired {
                        owner: owner.id.clone(),
                    }
                    .to_json(timestamp),
                );
                Ok(owner)
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                self.events.push(Event::PairingRefused { reason }.to_json(timestamp));
                Err(Refusal::Pairing(refusal))
            }
        }
    }

    /// Forgets the owner.
    pub(super) fn unpair(&mut self, source: UnpairSource, timestamp: u64) -> Result<Owner, Refusal> {
        let owner = self.pairing.unpair().ok_or(Refusal::NotPaired)?;
        self.report_due = true;
        let event = Event::Unpaired {
            owner: owner.id.clone(),
            source,
        };
        self.events.push(event.to_json(timestamp));
        Ok(owner)
    }
}
