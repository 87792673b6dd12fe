//! The VRRP state machine of RFC 9568 §6.4 (and RFC 3768 §6.4 for v2), as a
//! pure function: [`Instance::handle`] takes the time and an [`Event`] and
//! returns the [`Action`]s the caller must carry out. The caller owns the
//! sockets, the addresses and the one timer; see `LIFECYCLE.md`.

use std::net::IpAddr;
use std::ops::Add;
use std::time::Duration;

use crate::packet::{Version, interval_field};
use crate::{Error, Result};

/// Priority of the router that owns the virtual addresses.
pub const OWNER_PRIORITY: u8 = 255;

/// A point on the caller's monotonic clock, in microseconds from any origin
/// (Keepalived's timer resolution too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis.saturating_mul(1000))
    }

    /// Whole milliseconds from the origin.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, duration: Duration) -> Instant {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

/// The settings of one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Virtual router id, 1-255.
    pub vrid: u8,
    /// Protocol version spoken; v2 keeps its own interval, v3 learns the master's.
    pub version: Version,
    /// Configured priority: 1-254, or 255 for the address owner.
    pub priority: u8,
    /// Advertisement interval: whole seconds for v2, whole centiseconds for v3.
    pub interval: Duration,
    /// Whether a Backup takes over from a lower-priority master (RFC default: yes).
    pub preempt: bool,
    /// After entering Backup, a lower-priority master is still obeyed this long.
    pub preempt_delay: Duration,
    /// This router's address on the interface: the tie-breaker at equal priority.
    pub primary_address: IpAddr,
}

impl InstanceConfig {
    /// The config, or an error naming the first field out of range.
    pub fn validate(self) -> Result<Self> {
        let error = |field, reason: &str| Error::Config {
            vrid: self.vrid,
            field,
            reason: reason.to_owned(),
        };
        if self.vrid == 0 {
            return Err(error("vrid", "0 is not valid (1-255)"));
        }
        if self.priority == 0 {
            return Err(error("priority", "0 is reserved for stepping down (1-255)"));
        }
        if interval_field(self.version, self.interval).is_none() {
            let reason = match self.version {
                Version::V2 => "VRRPv2 needs whole seconds, 1-255",
                Version::V3 => "VRRPv3 needs whole centiseconds, 10 ms - 40.95 s",
            };
            return Err(error("interval", reason));
        }
        Ok(self)
    }
}

/// RFC 9568 states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not running: waiting for [`Event::Startup`].
    Initialize,
    /// Listening to a master, ready to take over when it goes quiet.
    Backup,
    /// Holding the addresses and advertising.
    Master,
}

/// What happened, as the caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The instance starts (or restarts after [`Event::Shutdown`]).
    Startup,
    /// The instance stops; a Master steps down with a priority-0 advertisement.
    Shutdown,
    /// A valid advertisement for this VRID from another router.
    Advertisement {
        priority: u8,
        source: IpAddr,
        /// The sender's interval; used by v3 only (v2 keeps its own).
        interval: Duration,
    },
    /// The timer last asked for by [`Action::ScheduleTimer`] expired.
    /// Early or stale expiries are ignored.
    Timer,
    /// The effective priority changed (tracking); 0 is taken as 1.
    SetPriority(u8),
}

/// What the caller must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority and the configured addresses.
    SendAdvertisement { priority: u8 },
    /// Add the virtual addresses to the interface.
    AddAddresses,
    /// Remove the virtual addresses from the interface.
    RemoveAddresses,
    /// Announce the addresses with gratuitous ARPs.
    SendGratuitousArps,
    /// Replace the timer with one that expires at this instant.
    ScheduleTimer(Instant),
    /// Stop the timer.
    CancelTimer,
}

/// Why the state last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// [`Event::Startup`]: Backup, or Master for the address owner.
    Startup,
    /// [`Event::Shutdown`].
    Shutdown,
    /// No advertisement within Master_Down_Interval, or within Skew_Time of
    /// the master stepping down.
    MasterDown,
    /// A better master advertised: higher priority, or equal from a higher address.
    Preempted { by: IpAddr, priority: u8 },
}

/// A state change: for the status API and the transition log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub at: Instant,
    pub from: State,
    pub to: State,
    pub reason: Reason,
}

/// One virtual router's election state.
#[derive(Debug, Clone)]
pub struct Instance {
    config: InstanceConfig,
    state: State,
    priority: u8,
    /// The master's advertisement interval (v3 learns it; v2 uses its own).
    master_interval: Duration,
    /// The current master, when known.
    master: Option<IpAddr>,
    timer: Option<Instant>,
    /// Until then a Backup obeys lower-priority masters (preempt delay).
    preempt_after: Instant,
    last_transition: Option<Transition>,
}

impl Instance {
    /// A stopped instance; [`Event::Startup`] starts it.
    pub fn new(config: InstanceConfig) -> Result<Self> {
        let config = config.validate()?;
        Ok(Self {
            state: State::Initialize,
            priority: config.priority,
            master_interval: config.interval,
            master: None,
            timer: None,
            preempt_after: Instant::default(),
            last_transition: None,
            config,
        })
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The effective priority (configured, or as last set by tracking).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The master's address: this router's when Master, the last one heard when Backup.
    pub fn master(&self) -> Option<IpAddr> {
        self.master
    }

    /// The last state change, if any.
    pub fn last_transition(&self) -> Option<Transition> {
        self.last_transition
    }

    /// When the pending timer expires, if one is pending.
    pub fn timer(&self) -> Option<Instant> {
        self.timer
    }

    /// Skew_Time: `(256 - priority) * master interval / 256`, in whole
    /// microseconds (finer than the RFC's centiseconds, so it still separates
    /// backups at 10 ms adverts).
    pub fn skew_time(&self) -> Duration {
        let interval = u64::try_from(self.master_interval.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros((256 - u64::from(self.priority)) * interval / 256)
    }

    /// Master_Down_Interval: `3 * master interval + Skew_Time`.
    pub fn master_down_interval(&self) -> Duration {
        self.master_interval * 3 + self.skew_time()
    }

    /// Applies `event` at `now` and returns what the caller must do.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match (self.state, event) {
            (_, Event::SetPriority(priority)) => self.set_priority(now, priority, &mut actions),
            (State::Initialize, Event::Startup) => {
                if self.priority == OWNER_PRIORITY {
                    self.become_master(now, Reason::Startup, &mut actions);
                } else {
                    self.master_interval = self.config.interval;
                    self.become_backup(now, Reason::Startup, &mut actions);
                }
            }
            (State::Initialize, _) | (_, Event::Startup) => {}
            (state, Event::Shutdown) => {
                self.timer = None;
                actions.push(Action::CancelTimer);
                if state == State::Master {
                    actions.push(Action::SendAdvertisement { priority: 0 });
                    actions.push(Action::RemoveAddresses);
                }
                self.enter(now, State::Initialize, Reason::Shutdown);
                self.master = None;
            }
            (_, Event::Timer) if self.timer.is_none_or(|at| at > now) => {}
            (State::Backup, Event::Timer) => {
                self.become_master(now, Reason::MasterDown, &mut actions)
            }
            (State::Master, Event::Timer) => self.advertise_on_time(now, &mut actions),
            (State::Backup, Event::Advertisement { priority: 0, .. }) => {
                // The master stepped down: take over after Skew_Time only.
                self.schedule(now + self.skew_time(), &mut actions);
            }
            (
                State::Backup,
                Event::Advertisement {
                    priority,
                    source,
                    interval,
                },
            ) => {
                let obey =
                    !self.config.preempt || priority >= self.priority || now < self.preempt_after;
                if obey {
                    self.learn_master(source, interval);
                    self.schedule(now + self.master_down_interval(), &mut actions);
                }
            }
            (State::Master, Event::Advertisement { priority: 0, .. }) => {
                // Another master stepped down: assert this one at once.
                self.advertise(now, &mut actions);
            }
            (
                State::Master,
                Event::Advertisement {
                    priority,
                    source,
                    interval,
                },
            ) => {
                let wins = priority > self.priority
                    || (priority == self.priority && source > self.config.primary_address);
                if wins {
                    self.learn_master(source, interval);
                    actions.push(Action::RemoveAddresses);
                    let reason = Reason::Preempted {
                        by: source,
                        priority,
                    };
                    self.become_backup(now, reason, &mut actions);
                }
            }
        }
        actions
    }

    fn set_priority(&mut self, now: Instant, priority: u8, actions: &mut Vec<Action>) {
        let priority = priority.max(1);
        if priority == self.priority {
            return;
        }
        self.priority = priority;
        // A Master tells its peers now, so a better backup can preempt sooner.
        if self.state == State::Master {
            self.advertise(now, actions);
        }
    }

    fn learn_master(&mut self, source: IpAddr, interval: Duration) {
        self.master = Some(source);
        if self.config.version == Version::V3 {
            self.master_interval = interval;
        }
    }

    fn enter(&mut self, now: Instant, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        self.last_transition = Some(Transition {
            at: now,
            from,
            to,
            reason,
        });
    }

    fn become_backup(&mut self, now: Instant, reason: Reason, actions: &mut Vec<Action>) {
        self.enter(now, State::Backup, reason);
        self.preempt_after = now + self.config.preempt_delay;
        self.schedule(now + self.master_down_interval(), actions);
    }

    fn become_master(&mut self, now: Instant, reason: Reason, actions: &mut Vec<Action>) {
        self.enter(now, State::Master, reason);
        self.master = Some(self.config.primary_address);
        // The advertisement first (RFC 9568 §6.4.2): other backups reset
        // their timers before this router spends time on netlink.
        actions.extend([
            Action::SendAdvertisement {
                priority: self.priority,
            },
            Action::AddAddresses,
            Action::SendGratuitousArps,
        ]);
        self.schedule(now + self.config.interval, actions);
    }

    /// Advertises when the advertisement timer expired, scheduling the next one
    /// an interval after the one due (not after now), so late wake-ups do not
    /// add up; a timer more than an interval late starts afresh from now.
    fn advertise_on_time(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let interval = self.config.interval;
        let next = match self.timer {
            Some(due) if now < due + interval => due + interval,
            _ => now + interval,
        };
        actions.push(Action::SendAdvertisement {
            priority: self.priority,
        });
        self.schedule(next, actions);
    }

    fn advertise(&mut self, now: Instant, actions: &mut Vec<Action>) {
        actions.push(Action::SendAdvertisement {
            priority: self.priority,
        });
        self.schedule(now + self.config.interval, actions);
    }

    fn schedule(&mut self, at: Instant, actions: &mut Vec<Action>) {
        self.timer = Some(at);
        actions.push(Action::ScheduleTimer(at));
    }
}

#[cfg(test)]
mod tests;
