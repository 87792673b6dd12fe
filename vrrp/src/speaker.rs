//! A running virtual router: one [`Instance`] driven by a task that owns its
//! sockets, its timer and the interface's addresses. See `LIFECYCLE.md`.

mod receive;
mod status;
mod timer;

#[doc(hidden)]
pub use receive::check as check_received;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::machine::{Action, Event, Instance, InstanceConfig, Transition};
use crate::net::netlink::{Link, Netlink, is_link_local};
use crate::net::socket::{Receiver, Sender};
use crate::net::{garp, ndisc};
use crate::packet::{Advertisement, Version, multicast_group};
pub use status::{Counters, SpeakerStatus, TransitionStatus};

/// How often a speaker in `Fault` tries to set itself up again.
pub const FAULT_RETRY: Duration = Duration::from_secs(1);

/// How often a running speaker looks at its interface's link.
const LINK_CHECK: Duration = Duration::from_millis(100);

/// How long [`Speaker::stop`] waits for the priority-0 advertisement and the
/// address removal before giving up on the task.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a resigning Master waits to hear its successor.
pub const HAND_OVER_LIMIT: Duration = Duration::from_millis(1500);

/// Everything one virtual router needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Name for logs and status (the VirtualIP's `namespace/name`).
    pub name: String,
    /// Interface to speak on and add the addresses to.
    pub interface: String,
    pub vrid: u8,
    pub version: Version,
    /// Configured priority, 1-255 (tracking lowers the effective one).
    pub priority: u8,
    pub interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// The virtual addresses with their prefix lengths, all IPv4 or all IPv6.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Unicast peers, of the addresses' family; empty means multicast to
    /// 224.0.0.18 or ff02::12.
    pub unicast_peers: Vec<IpAddr>,
    /// Gratuitous ARPs (IPv4) or unsolicited neighbour advertisements (IPv6)
    /// per address on becoming master, and their spacing.
    pub garp_count: u32,
    pub garp_interval: Duration,
    /// VRRPv2 simple text password, zero-padded (keepalived's `auth_type
    /// PASS`): sent, and required of every advertisement received.
    pub password: Option<[u8; 8]>,
}

/// Why a speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("VirtualIP {name}: interface {interface:?} does not exist")]
    NoInterface { name: String, interface: String },
    #[error("VirtualIP {name}: interface {interface} is down (not up, or no carrier)")]
    LinkDown { name: String, interface: String },
    #[error("VirtualIP {name}: interface {interface} has no {wanted} of its own to send VRRP from")]
    NoPrimaryAddress {
        name: String,
        interface: String,
        wanted: &'static str,
    },
    #[error("VirtualIP {name}: {what}: {source}")]
    Io {
        name: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::Error),
}

#[derive(Debug)]
enum Control {
    SetPriority(u8),
    /// Resign (see [`Speaker::hand_over`]); the sender is told when done.
    HandOver(oneshot::Sender<()>),
    Stop,
}

/// A virtual router running on its own task.
pub struct Speaker {
    control: mpsc::UnboundedSender<Control>,
    status: watch::Receiver<SpeakerStatus>,
    task: JoinHandle<()>,
}

impl Speaker {
    /// Checks the settings, then starts the speaker's task: it looks up the
    /// interface and its primary address (IPv4, or IPv6 link-local), removes
    /// virtual addresses left by an earlier run, opens the sockets and runs as
    /// Backup (or Master, for the address owner). While that fails (no such
    /// interface, no address on it yet, a socket refused), the speaker reports `Fault` with
    /// the reason and tries again every [`FAULT_RETRY`], as Keepalived's FAULT
    /// state waits for the interface. Only invalid settings fail here.
    pub async fn start(config: SpeakerConfig, netlink: Netlink) -> Result<Speaker, SpeakerError> {
        Instance::new(instance_config(&config, Ipv4Addr::UNSPECIFIED.into()))?;
        let (status_tx, status) = watch::channel(SpeakerStatus::new(&config, None));
        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(supervise(config, netlink, status_tx, control_rx));
        Ok(Speaker {
            control,
            status,
            task,
        })
    }

    /// Sets the effective priority (tracking); the configured one is the ceiling.
    pub fn set_priority(&self, priority: u8) {
        self.priority_setter().set(priority);
    }

    /// A handle that sets the priority from elsewhere (a tracking task).
    pub fn priority_setter(&self) -> PrioritySetter {
        PrioritySetter(self.control.clone())
    }

    /// The current state.
    pub fn status(&self) -> SpeakerStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<SpeakerStatus> {
        self.status.clone()
    }

    /// The first half of a graceful stop: a Master sends a priority-0
    /// advertisement and waits until another router advertises as Master
    /// (at most [`HAND_OVER_LIMIT`] or two intervals), keeping its
    /// addresses so that connections arriving meanwhile are still served.
    /// From then on the speaker neither advertises nor elects; [`Speaker::stop`]
    /// removes the addresses.
    pub async fn hand_over(&self) {
        let (done, wait) = oneshot::channel();
        if self.control.send(Control::HandOver(done)).is_ok() {
            let _ = tokio::time::timeout(STOP_TIMEOUT, wait).await;
        }
    }

    /// Steps down: a Master sends a priority-0 advertisement and removes its
    /// addresses, so a Backup takes over after its skew time.
    pub async fn stop(self) {
        let _ = self.control.send(Control::Stop);
        let mut task = self.task;
        if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
            tracing::warn!("VRRP speaker did not stop in time");
            task.abort();
        }
    }
}

/// Sets a speaker's effective priority; does nothing once it stopped.
#[derive(Clone, Debug)]
pub struct PrioritySetter(mpsc::UnboundedSender<Control>);

impl PrioritySetter {
    pub fn set(&self, priority: u8) {
        let _ = self.0.send(Control::SetPriority(priority));
    }
}

fn instance_config(config: &SpeakerConfig, primary: IpAddr) -> InstanceConfig {
    InstanceConfig {
        vrid: config.vrid,
        version: config.version,
        priority: config.priority,
        interval: config.interval,
        preempt: config.preempt,
        preempt_delay: config.preempt_delay,
        primary_address: primary,
    }
}

/// Sets the speaker up and runs it; in `Fault` (it cannot be set up, or its
/// link went down while running), retries the set-up until it works or the
/// speaker is stopped. Priorities set meanwhile are kept.
async fn supervise(
    config: SpeakerConfig,
    netlink: Netlink,
    mut status: watch::Sender<SpeakerStatus>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut priority = None;
    let mut last_error = String::new();
    loop {
        match setup(&config, &netlink).await {
            Ok(ready) => {
                if !last_error.is_empty() {
                    tracing::info!(virtual_ip = %config.name, "VRRP started after a fault");
                }
                let runner = Runner {
                    config: config.clone(),
                    link: ready.link,
                    primary: ready.primary,
                    netlink: netlink.clone(),
                    sender: ready.sender,
                    instance: ready.instance,
                    origin: tokio::time::Instant::now(),
                    origin_unix_ms: unix_ms(SystemTime::now()),
                    status,
                    counters: Counters::default(),
                    announcer: ready.announcer,
                    announcing: None,
                    set_priority: priority,
                    became_master_at_unix_ms: None,
                    master_heard: None,
                    heard_vrids: std::collections::BTreeMap::new(),
                };
                match (runner.run(ready.receiver, ready.timer, &mut control)).await {
                    Ended::Stopped => return,
                    Ended::LinkDown(sender, set) => {
                        (status, priority) = (sender, set);
                        last_error.clear();
                        // The set-up now fails, reporting Fault, until the link is back.
                        continue;
                    }
                }
            }
            Err(error) => {
                let error = error.to_string();
                if error != last_error {
                    tracing::error!(virtual_ip = %config.name, %error, "VRRP could not start; retrying every {FAULT_RETRY:?}");
                    status.send_replace(SpeakerStatus::fault(&config, error.clone()));
                    last_error = error;
                }
            }
        }
        let retry = tokio::time::sleep(FAULT_RETRY);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                () = &mut retry => break,
                command = control.recv() => match command {
                    Some(Control::SetPriority(p)) => priority = Some(p),
                    // Not Master: nothing to hand over.
                    Some(Control::HandOver(done)) => { let _ = done.send(()); }
                    Some(Control::Stop) | None => return,
                },
            }
        }
    }
}

/// What a running speaker needs from the system.
struct Ready {
    link: Link,
    primary: IpAddr,
    instance: Instance,
    sender: Sender,
    receiver: Receiver,
    announcer: Option<Arc<Mutex<Announcer>>>,
    timer: timer::Timer,
}

async fn setup(config: &SpeakerConfig, netlink: &Netlink) -> Result<Ready, SpeakerError> {
    let io = |what| {
        let name = config.name.clone();
        move |source| SpeakerError::Io { name, what, source }
    };
    let link = netlink
        .link(&config.interface)
        .await
        .map_err(io("reading the interface"))?
        .ok_or_else(|| SpeakerError::NoInterface {
            name: config.name.clone(),
            interface: config.interface.clone(),
        })?;
    if !link.up {
        return Err(SpeakerError::LinkDown {
            name: config.name.clone(),
            interface: config.interface.clone(),
        });
    }
    let on_link: Vec<_> = (netlink.addresses().await)
        .map_err(io("reading addresses"))?
        .into_iter()
        .filter(|a| a.index == link.index)
        .collect();
    let is_virtual = |ip: IpAddr| config.addresses.iter().any(|(a, _)| *a == ip);
    let ipv6 = config.addresses.first().is_some_and(|(a, _)| a.is_ipv6());
    let candidates: Vec<IpAddr> = (on_link.iter())
        .filter(|a| !a.tentative && !is_virtual(a.address) && a.address.is_ipv6() == ipv6)
        .map(|a| a.address)
        .collect();
    // IPv6 multicast advertisements come from the link-local address (RFC
    // 9568 §5.1.2.1); unicast ones from a global address when there is one,
    // so peers know each other by the addresses they are listed with.
    let unicast_v6 = ipv6 && !config.unicast_peers.is_empty();
    let primary = (candidates.iter())
        .find(|ip| !ipv6 || is_link_local(**ip) != unicast_v6)
        .or(candidates.first().filter(|_| unicast_v6))
        .copied()
        .ok_or_else(|| SpeakerError::NoPrimaryAddress {
            name: config.name.clone(),
            interface: config.interface.clone(),
            wanted: if ipv6 {
                "IPv6 link-local address"
            } else {
                "IPv4 address"
            },
        })?;
    for leftover in on_link.iter().filter(|a| is_virtual(a.address)) {
        tracing::warn!(virtual_ip = %config.name, address = %leftover.address,
            interface = %config.interface, "removing a virtual address left by an earlier run");
        (netlink.remove(link.index, leftover.address).await)
            .map_err(io("removing a leftover address"))?;
    }
    let instance = Instance::new(instance_config(config, primary))?;
    let sender = Sender::open(&config.interface, link.index, primary)
        .map_err(io("opening the send socket"))?;
    let multicast = config.unicast_peers.is_empty();
    let receiver = Receiver::open(&config.interface, link.index, ipv6, multicast)
        .map_err(io("opening the receive socket"))?;
    let announcer = match <[u8; 6]>::try_from(link.mac.as_slice()) {
        Ok(mac) if config.garp_count > 0 => Some(Arc::new(Mutex::new(
            Announcer::open(config, &link, mac, primary).map_err(io(
                "opening the socket for gratuitous ARP or neighbour advertisements",
            ))?,
        ))),
        _ => None,
    };
    let timer = timer::Timer::new().map_err(io("creating the timer"))?;
    Ok(Ready {
        link,
        primary,
        instance,
        sender,
        receiver,
        announcer,
        timer,
    })
}

/// Tells the link that this node now holds the addresses: gratuitous ARPs
/// (IPv4) or unsolicited neighbour advertisements (IPv6), one per address
/// each round. Opened once per speaker, so a new master's first round leaves
/// at once.
enum Announcer {
    Arp(garp::Socket, Vec<[u8; garp::FRAME_LEN]>),
    Ndisc(ndisc::Socket, Vec<[u8; ndisc::MESSAGE_LEN]>),
}

impl Announcer {
    fn open(
        config: &SpeakerConfig,
        link: &Link,
        mac: [u8; 6],
        primary: IpAddr,
    ) -> std::io::Result<Announcer> {
        let addresses = config.addresses.iter().map(|(a, _)| *a);
        Ok(match primary {
            IpAddr::V4(_) => Announcer::Arp(
                garp::Socket::open(link.index, &link.name, mac)?,
                addresses
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(garp::frame(mac, a)),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
            ),
            IpAddr::V6(_) => Announcer::Ndisc(
                ndisc::Socket::open(&link.name, link.index, primary)?,
                addresses
                    .filter_map(|a| match a {
                        IpAddr::V6(a) => Some(ndisc::message(mac, a)),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
            ),
        })
    }

    fn send(&mut self) -> std::io::Result<()> {
        match self {
            Announcer::Arp(socket, frames) => socket.send(frames),
            Announcer::Ndisc(socket, messages) => socket.send(messages),
        }
    }
}

struct Runner {
    config: SpeakerConfig,
    link: Link,
    primary: IpAddr,
    netlink: Netlink,
    sender: Sender,
    instance: Instance,
    origin: tokio::time::Instant,
    origin_unix_ms: u64,
    status: watch::Sender<SpeakerStatus>,
    counters: Counters,
    /// Announces the addresses; none when that is off or the link has no MAC.
    announcer: Option<Arc<Mutex<Announcer>>>,
    /// The rest of the announcement burst in progress.
    announcing: Option<JoinHandle<()>>,
    /// The priority set last (tracking), kept for a restart after a fault.
    set_priority: Option<u8>,
    /// When this speaker last became Master (kept after it leaves Master).
    became_master_at_unix_ms: Option<u64>,
    /// When, as Backup, it last heard the Master advertise.
    master_heard: Option<crate::Instant>,
    /// Other virtual routers' IDs heard on the link, and when last.
    heard_vrids: std::collections::BTreeMap<u8, tokio::time::Instant>,
}

/// How a running speaker ended.
enum Ended {
    /// Stopped, or its handle dropped.
    Stopped,
    /// Its interface went down (Keepalived's FAULT): the addresses are
    /// removed; the status sender and the priority set last go back to
    /// [`supervise`].
    LinkDown(watch::Sender<SpeakerStatus>, Option<u8>),
}

impl Runner {
    async fn run(
        mut self,
        mut receiver: Receiver,
        mut timer: timer::Timer,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Ended {
        self.handle(Event::Startup).await;
        if let Some(p) = self.set_priority {
            self.handle(Event::SetPriority(p.min(self.config.priority)))
                .await;
        }
        // Its own task, so a slow netlink answer never holds this loop up.
        let (down_tx, mut down) = tokio::sync::oneshot::channel();
        let watcher = tokio::spawn(watch_link(
            self.netlink.clone(),
            self.config.interface.clone(),
            self.link.index,
            down_tx,
        ));
        let mut link_down = false;
        loop {
            let deadline =
                (self.instance.timer()).map(|at| self.origin + Duration::from_micros(at.0));
            if let Err(error) = timer.set(deadline) {
                tracing::error!(virtual_ip = %self.config.name, %error, "VRRP timer not set");
            }
            tokio::select! {
                biased;
                command = control.recv() => match command {
                    Some(Control::SetPriority(p)) => {
                        self.set_priority = Some(p);
                        let p = p.min(self.config.priority);
                        self.handle(Event::SetPriority(p)).await;
                    }
                    Some(Control::HandOver(done)) => {
                        self.resign(&mut receiver, done).await;
                        // Only Stop is left to wait for.
                        while let Some(command) = control.recv().await {
                            match command {
                                Control::Stop => break,
                                Control::HandOver(done) => { let _ = done.send(()); }
                                Control::SetPriority(_) => {}
                            }
                        }
                        break;
                    }
                    Some(Control::Stop) | None => break,
                },
                // Datagrams before the timer: after this thread was held up
                // (a loaded CPU), advertisements already queued must reset the
                // Master_Down timer before it is taken as expired.
                received = receiver.recv() => match received {
                    Ok(received) => {
                        let event = receive::check(received, &self.config, self.primary, &mut self.counters);
                        if let Some(id) = self.counters.other_vrid.take() {
                            self.heard_vrids.insert(id, tokio::time::Instant::now());
                        }
                        if let Some(event) = event {
                            self.handle(event).await;
                        }
                        // A flood of datagrams must not hold the timer back.
                        if self.instance.timer().is_some_and(|at| at <= self.now()) {
                            self.handle(Event::Timer).await;
                        }
                        self.publish();
                    }
                    Err(error) => {
                        self.counters.receive_errors += 1;
                        tracing::warn!(virtual_ip = %self.config.name, %error, "VRRP receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                () = timer.expired() => self.handle(Event::Timer).await,
                Ok(()) = &mut down => {
                    tracing::warn!(virtual_ip = %self.config.name, interface = %self.config.interface,
                        "interface down (or gone): leaving the election and removing the addresses");
                    link_down = true;
                    break;
                }
            }
        }
        watcher.abort();
        self.handle(Event::Shutdown).await;
        if link_down {
            Ended::LinkDown(self.status, self.set_priority)
        } else {
            Ended::Stopped
        }
    }

    /// A Master advertises priority 0 and waits (bounded) for another
    /// router's advertisement; anything else has nothing to hand over.
    async fn resign(&mut self, receiver: &mut Receiver, done: oneshot::Sender<()>) {
        if self.instance.state() == crate::machine::State::Master {
            self.advertise(0);
            let limit = HAND_OVER_LIMIT.min(self.config.interval * 2);
            let heard = tokio::time::timeout(limit, async {
                loop {
                    let Ok(received) = receiver.recv().await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let event =
                        receive::check(received, &self.config, self.primary, &mut self.counters);
                    if let Some(Event::Advertisement {
                        priority: 1..,
                        source,
                        ..
                    }) = event
                    {
                        return source;
                    }
                }
            })
            .await;
            match heard {
                Ok(source) => {
                    tracing::info!(virtual_ip = %self.config.name, successor = %source, "handed over")
                }
                Err(_) => {
                    tracing::info!(virtual_ip = %self.config.name, "no successor heard within {limit:?}; releasing anyway")
                }
            }
        }
        let _ = done.send(());
    }

    fn now(&self) -> crate::Instant {
        crate::Instant(u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    async fn handle(&mut self, event: Event) {
        if matches!(event, Event::Advertisement { .. })
            && self.instance.state() == crate::machine::State::Backup
        {
            self.master_heard = Some(self.now());
        }
        let before = self.instance.last_transition();
        let actions = self.instance.handle(self.now(), event);
        for action in actions {
            self.act(action).await;
        }
        let after = self.instance.last_transition();
        if let Some(t) = after.filter(|_| after != before) {
            self.counters.transitions += 1;
            if t.to == crate::machine::State::Master {
                self.counters.became_master += 1;
                self.became_master_at_unix_ms = Some(self.origin_unix_ms + t.at.as_millis());
                if t.from == crate::machine::State::Backup
                    && let Some(heard) = self.master_heard.take()
                {
                    self.counters.last_failover_us = Some(t.at.0.saturating_sub(heard.0));
                }
            }
            if t.from == crate::machine::State::Master {
                self.counters.released_master += 1;
            }
            self.log(t);
        }
        self.publish();
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::SendAdvertisement { priority } => self.advertise(priority),
            Action::AddAddresses => {
                for &(address, prefix_len) in &self.config.addresses {
                    if let Err(error) = self.netlink.add(self.link.index, address, prefix_len).await
                    {
                        tracing::error!(virtual_ip = %self.config.name, %address, %error, "adding the virtual address failed");
                    }
                }
            }
            Action::RemoveAddresses => {
                if let Some(burst) = self.announcing.take() {
                    burst.abort();
                }
                for &(address, _) in &self.config.addresses {
                    if let Err(error) = self.netlink.remove(self.link.index, address).await {
                        tracing::error!(virtual_ip = %self.config.name, %address, %error, "removing the virtual address failed");
                    }
                }
            }
            Action::SendGratuitousArps => self.announce(),
            Action::ScheduleTimer(_) | Action::CancelTimer => {}
        }
    }

    fn advertise(&mut self, priority: u8) {
        let advert = Advertisement {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval: self.config.interval,
            addresses: self.config.addresses.iter().map(|(a, _)| *a).collect(),
            password: self.config.password,
        };
        let group = [multicast_group(self.primary)];
        let destinations = if self.config.unicast_peers.is_empty() {
            &group[..]
        } else {
            &self.config.unicast_peers[..]
        };
        for &destination in destinations {
            let sent = advert
                .encode(self.primary, destination)
                .map_err(std::io::Error::other)
                .and_then(|bytes| self.sender.send(&bytes, destination));
            match sent {
                Ok(()) => {
                    self.counters.sent += 1;
                    if priority == 0 {
                        self.counters.priority_zero_sent += 1;
                    }
                }
                Err(error) => {
                    self.counters.send_errors += 1;
                    tracing::warn!(virtual_ip = %self.config.name, %destination, %error, "VRRP advertisement not sent");
                }
            }
        }
    }

    /// Sends the first round of announcements at once from this task, the
    /// rest from a task that sleeps between rounds.
    fn announce(&mut self) {
        let Some(announcer) = self.announcer.clone() else {
            return;
        };
        if let Some(old) = self.announcing.take() {
            old.abort();
        }
        let name = self.config.name.clone();
        let (count, interval) = (self.config.garp_count, self.config.garp_interval);
        let send = move || {
            let sent = announcer.lock().map_or_else(
                |_| Err(std::io::Error::other("announcement socket poisoned")),
                |mut a| a.send(),
            );
            if let Err(error) = &sent {
                tracing::warn!(virtual_ip = %name, %error, "gratuitous ARP or neighbour advertisement not sent");
            }
            sent.is_ok()
        };
        if !send() || count < 2 {
            return;
        }
        self.announcing = Some(tokio::spawn(async move {
            for _ in 1..count {
                tokio::time::sleep(interval).await;
                if !send() {
                    return;
                }
            }
        }));
    }

    fn log(&self, t: Transition) {
        tracing::info!(
            virtual_ip = %self.config.name,
            vrid = self.config.vrid,
            interface = %self.config.interface,
            from = ?t.from,
            to = ?t.to,
            reason = %status::reason(t.reason),
            priority = self.instance.priority(),
            "VRRP state changed"
        );
    }

    fn publish(&self) {
        let status = SpeakerStatus::of(self);
        self.status.send_if_modified(|old| {
            let changed = *old != status;
            *old = status;
            changed
        });
    }
}

/// Looks at interface `name` every [`LINK_CHECK`]; says once when it is down,
/// gone or replaced (another index). An error reading it says nothing.
async fn watch_link(
    netlink: Netlink,
    name: String,
    index: u32,
    down: tokio::sync::oneshot::Sender<()>,
) {
    loop {
        tokio::time::sleep(LINK_CHECK).await;
        if let Ok(link) = netlink.link(&name).await
            && !link.is_some_and(|l| l.up && l.index == index)
        {
            let _ = down.send(());
            return;
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
