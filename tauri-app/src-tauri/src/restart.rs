//! When to restart a sidecar that stopped, and after how long. Pure: no clock, no processes.
//!
//! A sidecar that served for a while and then crashed is restarted quickly, and again with
//! doubling delays (capped) if it keeps crashing; a run that lasted `stable_after` wipes the slate.
//! A sidecar that cannot even get ready is given a few tries and then the shell gives up and
//! shows why: a corrupt database or a broken bundle fails the same way every time, and a tablet
//! spinning on it forever tells the inspector nothing. No jitter: there is one sidecar per
//! tablet, so there is no herd to spread out, and a fixed schedule is easier to reason about.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the first restart after a good run.
    pub base: Duration,
    /// No delay grows beyond this.
    pub cap: Duration,
    /// A run at least this long after the ready line counts as healthy and resets the backoff.
    pub stable_after: Duration,
    /// Consecutive launches that never got ready before the shell stops trying on its own.
    pub max_startup_failures: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            max_startup_failures: 5,
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `attempt` (1-based): base, 2·base, 4·base, … up to cap.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.cap, |d| d.min(self.cap))
    }
}

/// How a run of the sidecar ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It never got ready: died, hung past the timeout, or printed something else. `permanent`
    /// when its exit status says that trying again cannot help (see [`is_permanent_exit`]).
    BeforeReady { permanent: bool },
    /// It served for `ran_for` after its ready line, then stopped.
    AfterReady { ran_for: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Restart { attempt: u32, delay: Duration },
    GiveUp,
}

/// The policy's memory between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartState {
    attempt: u32,
    startup_failures: u32,
}

impl RestartState {
    pub fn on_exit(&mut self, policy: &RestartPolicy, exit: Exit) -> Decision {
        match exit {
            Exit::AfterReady { ran_for } => {
                self.startup_failures = 0;
                if ran_for >= policy.stable_after {
                    self.attempt = 0;
                }
            }
            Exit::BeforeReady { permanent } => {
                self.startup_failures = self.startup_failures.saturating_add(1);
                if permanent || self.startup_failures >= policy.max_startup_failures {
                    return Decision::GiveUp;
                }
            }
        }
        self.attempt = self.attempt.saturating_add(1);
        Decision::Restart {
            attempt: self.attempt,
            delay: policy.delay(self.attempt),
        }
    }

    /// Someone asked for a fresh start (the error screen's "try again"): forget past failures.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The sidecar exits with status 2 when it refuses to start for a reason a restart will not fix
/// (no token, a database that is corrupt or belongs to another application or a newer kensa;
/// argparse errors use 2 as well). Anything else, including death by a signal, may be transient.
pub fn is_permanent_exit(code: Option<i32>) -> bool {
    code == Some(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy() -> RestartPolicy {
        RestartPolicy {
            base: ms(100),
            cap: ms(1000),
            stable_after: Duration::from_secs(10),
            max_startup_failures: 3,
        }
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let p = policy();
        let delays: Vec<_> = (1..=6).map(|a| p.delay(a)).collect();
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(p.delay(0), ms(100));
        // No overflow however long it keeps failing.
        assert_eq!(p.delay(u32::MAX), ms(1000));
        let huge = RestartPolicy {
            base: Duration::from_secs(u64::MAX / 2),
            cap: Duration::MAX,
            ..policy()
        };
        assert_eq!(huge.delay(40), Duration::MAX);
    }

    #[test]
    fn crashes_after_short_runs_back_off() {
        let p = policy();
        let mut s = RestartState::default();
        let short = Exit::AfterReady { ran_for: ms(50) };
        let got: Vec<_> = (0..5).map(|_| s.on_exit(&p, short)).collect();
        let delays: Vec<_> = got
            .iter()
            .map(|d| match d {
                Decision::Restart { delay, .. } => *delay,
                Decision::GiveUp => panic!("gave up on a sidecar that did get ready"),
            })
            .collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1000)]);
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let p = policy();
        let mut s = RestartState::default();
        for _ in 0..4 {
            s.on_exit(&p, Exit::AfterReady { ran_for: ms(1) });
        }
        let after_stable = s.on_exit(
            &p,
            Exit::AfterReady {
                ran_for: Duration::from_secs(10),
            },
        );
        assert_eq!(
            after_stable,
            Decision::Restart {
                attempt: 1,
                delay: ms(100)
            }
        );
    }

    #[test]
    fn gives_up_after_repeated_startup_failures() {
        let p = policy();
        let mut s = RestartState::default();
        let dead = Exit::BeforeReady { permanent: false };
        assert_eq!(
            s.on_exit(&p, dead),
            Decision::Restart {
                attempt: 1,
                delay: ms(100)
            }
        );
        assert_eq!(
            s.on_exit(&p, dead),
            Decision::Restart {
                attempt: 2,
                delay: ms(200)
            }
        );
        assert_eq!(s.on_exit(&p, dead), Decision::GiveUp);
    }

    #[test]
    fn getting_ready_clears_the_startup_failures() {
        let p = policy();
        let mut s = RestartState::default();
        let dead = Exit::BeforeReady { permanent: false };
        s.on_exit(&p, dead);
        s.on_exit(&p, dead);
        // It got ready once, then crashed: startup failures start over, the backoff does not.
        assert_eq!(
            s.on_exit(&p, Exit::AfterReady { ran_for: ms(5) }),
            Decision::Restart {
                attempt: 3,
                delay: ms(400)
            }
        );
        assert!(matches!(s.on_exit(&p, dead), Decision::Restart { .. }));
        assert!(matches!(s.on_exit(&p, dead), Decision::Restart { .. }));
        assert_eq!(s.on_exit(&p, dead), Decision::GiveUp);
    }

    #[test]
    fn a_permanent_failure_gives_up_at_once() {
        let mut s = RestartState::default();
        assert_eq!(
            s.on_exit(&policy(), Exit::BeforeReady { permanent: true }),
            Decision::GiveUp
        );
    }

    #[test]
    fn reset_starts_over() {
        let p = policy();
        let mut s = RestartState::default();
        for _ in 0..3 {
            s.on_exit(&p, Exit::BeforeReady { permanent: false });
        }
        s.reset();
        assert_eq!(
            s.on_exit(&p, Exit::BeforeReady { permanent: false }),
            Decision::Restart {
                attempt: 1,
                delay: ms(100)
            }
        );
    }

    #[test]
    fn exit_status_two_is_permanent() {
        assert!(is_permanent_exit(Some(2)));
        assert!(!is_permanent_exit(Some(1)));
        assert!(!is_permanent_exit(Some(0)));
        assert!(!is_permanent_exit(None));
    }
}
