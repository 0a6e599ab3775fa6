//! The 6.824 "unreliable network" switch, for any server of the workspace.
//!
//! When enabled, each incoming request draws a [`Fate`]: 10% are dropped, 20% of the rest
//! are processed but their reply is discarded (18% overall), the remaining 72% are
//! delivered normally. Disabled, every request is delivered and no randomness is drawn.
//!
//! A request/response tarpc service gets the behaviour by wrapping its `Serve` with
//! [`Unreliable::wrap`]: `incoming.execute(unreliable.wrap(MyServer.serve()))`.
//! The peer network applies it per envelope instead (see `peer::server`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tarpc::server::Serve;
use tarpc::{context, ServerError};

/// What happens to one request. For a request/response RPC:
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Processed normally; the caller gets the reply.
    Deliver,
    /// Never processed: the handler does not run, no reply is ever sent, and the caller's
    /// call fails when its context deadline expires (tarpc `RpcError::DeadlineExceeded`).
    /// The server side is cleaned up at that deadline too.
    Drop,
    /// Processed to completion (every side effect happens) but the reply is thrown away:
    /// the caller cannot tell this from [`Fate::Drop`] and sees its deadline expire, so
    /// a retry of the same operation must be recognised as a duplicate.
    DiscardReply,
}

/// A switchable, optionally seeded source of [`Fate`]s, shared by a server's handlers.
#[derive(Debug)]
pub struct Unreliable {
    enabled: AtomicBool,
    drop_rate: f64,
    discard_reply_rate: f64,
    rng: Mutex<StdRng>,
}

impl Unreliable {
    /// The probability of [`Fate::Drop`] (6.824's value).
    pub const DROP_RATE: f64 = 0.1;
    /// The probability of [`Fate::DiscardReply`] for a request that was not dropped.
    pub const DISCARD_REPLY_RATE: f64 = 0.2;

    /// A policy seeded from OS entropy, on or off.
    pub fn new(enabled: bool) -> Self {
        Self::from_rng(enabled, StdRng::from_entropy())
    }

    /// A policy whose sequence of fates is fixed by `seed` (for reproducible tests).
    pub fn seeded(enabled: bool, seed: u64) -> Self {
        Self::from_rng(enabled, StdRng::seed_from_u64(seed))
    }

    /// An always-[`Fate::Deliver`] policy that can be switched on later.
    pub fn disabled() -> Self {
        Self::new(false)
    }

    fn from_rng(enabled: bool, rng: StdRng) -> Self {
        Unreliable {
            enabled: AtomicBool::new(enabled),
            drop_rate: Self::DROP_RATE,
            discard_reply_rate: Self::DISCARD_REPLY_RATE,
            rng: Mutex::new(rng),
        }
    }

    /// Replaces the default rates: `drop` is the probability of [`Fate::Drop`],
    /// `discard_reply` the probability of [`Fate::DiscardReply`] among the requests not
    /// dropped. Both are clamped to `[0, 1]`; NaN counts as 0.
    pub fn with_rates(mut self, drop: f64, discard_reply: f64) -> Self {
        self.drop_rate = clamp_probability(drop);
        self.discard_reply_rate = clamp_probability(discard_reply);
        self
    }

    /// Whether requests are currently subject to loss.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns the unreliable behaviour on or off (takes effect for the next request).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Draws the fate of one incoming request.
    pub fn on_request(&self) -> Fate {
        if !self.is_enabled() {
            return Fate::Deliver;
        }
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        if rng.gen::<f64>() < self.drop_rate {
            Fate::Drop
        } else if rng.gen::<f64>() < self.discard_reply_rate {
            Fate::DiscardReply
        } else {
            Fate::Deliver
        }
    }

    /// Wraps a tarpc `Serve` (the generated `MyService::serve()`) so each request meets
    /// its [`Fate`] before and after the handler runs.
    pub fn wrap<S>(self: &Arc<Self>, inner: S) -> UnreliableServe<S> {
        UnreliableServe {
            inner,
            policy: Arc::clone(self),
        }
    }
}

impl Default for Unreliable {
    /// Disabled, entropy-seeded.
    fn default() -> Self {
        Self::disabled()
    }
}

fn clamp_probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// A tarpc `Serve` that applies an [`Unreliable`] policy around another one.
///
/// A dropped or discarded request's handler stays pending (doing nothing) until tarpc
/// aborts it at the request's deadline or on the client's cancellation, so no response
/// is ever written for it.
#[derive(Clone, Debug)]
pub struct UnreliableServe<S> {
    inner: S,
    policy: Arc<Unreliable>,
}

impl<S: Serve> Serve for UnreliableServe<S> {
    type Req = S::Req;
    type Resp = S::Resp;

    async fn serve(self, ctx: context::Context, req: S::Req) -> Result<S::Resp, ServerError> {
        match self.policy.on_request() {
            Fate::Deliver => self.inner.serve(ctx, req).await,
            Fate::Drop => {
                drop(req);
                std::future::pending().await
            }
            Fate::DiscardReply => {
                let _discarded = self.inner.serve(ctx, req).await;
                std::future::pending().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fractions(policy: &Unreliable, draws: usize) -> (f64, f64, f64) {
        let (mut dropped, mut discarded, mut delivered) = (0, 0, 0);
        for _ in 0..draws {
            match policy.on_request() {
                Fate::Drop => dropped += 1,
                Fate::DiscardReply => discarded += 1,
                Fate::Deliver => delivered += 1,
            }
        }
        let n = draws as f64;
        (
            dropped as f64 / n,
            discarded as f64 / n,
            delivered as f64 / n,
        )
    }

    #[test]
    fn unreliable_fractions_match_6824() {
        let policy = Unreliable::seeded(true, 6824);
        let (dropped, discarded, delivered) = fractions(&policy, 10_000);
        // Standard deviations over 10k draws are about 0.3% / 0.4%; allow ~5 sigma.
        assert!((dropped - 0.10).abs() < 0.015, "dropped {dropped}");
        assert!((discarded - 0.18).abs() < 0.02, "discarded {discarded}");
        assert!((delivered - 0.72).abs() < 0.025, "delivered {delivered}");
    }

    #[test]
    fn unreliable_same_seed_same_fates() {
        let a = Unreliable::seeded(true, 7);
        let b = Unreliable::seeded(true, 7);
        let fa: Vec<Fate> = (0..100).map(|_| a.on_request()).collect();
        let fb: Vec<Fate> = (0..100).map(|_| b.on_request()).collect();
        assert_eq!(fa, fb);
    }

    #[test]
    fn unreliable_disabled_always_delivers() {
        let policy = Unreliable::seeded(false, 1);
        assert_eq!(fractions(&policy, 10_000), (0.0, 0.0, 1.0));
        policy.set_enabled(true);
        let (dropped, _, _) = fractions(&policy, 10_000);
        assert!(dropped > 0.05);
        policy.set_enabled(false);
        assert_eq!(fractions(&policy, 1_000), (0.0, 0.0, 1.0));
    }

    #[test]
    fn unreliable_rates_are_clamped() {
        let always_drop = Unreliable::seeded(true, 1).with_rates(7.0, f64::NAN);
        assert_eq!(fractions(&always_drop, 100), (1.0, 0.0, 0.0));
        let always_discard = Unreliable::seeded(true, 1).with_rates(-1.0, 1.0);
        assert_eq!(fractions(&always_discard, 100), (0.0, 1.0, 0.0));
    }
}
