use std::collections::VecDeque;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn address(node: usize) -> IpAddr {
    IpAddr::from([10, 0, 0, 1 + node as u8])
}

fn config(node: usize, priority: u8) -> InstanceConfig {
    InstanceConfig {
        vrid: 51,
        version: Version::V3,
        priority,
        interval: SECOND,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_address: address(node),
    }
}

fn instance(config: InstanceConfig) -> Instance {
    Instance::new(config).unwrap()
}

fn advert(priority: u8, node: usize) -> Event {
    Event::Advertisement {
        priority,
        source: address(node),
        interval: SECOND,
    }
}

struct Node {
    instance: Instance,
    timer: Option<Instant>,
    holds_addresses: bool,
    alive: bool,
    linked: bool,
}

/// Routers on one link: zero latency, a virtual clock, and the caller's side
/// of every action (addresses held, one timer per router).
struct Bus {
    now: Instant,
    nodes: Vec<Node>,
    /// Every state change: when, which node, the new state.
    transitions: Vec<(u64, usize, State)>,
}

impl Bus {
    /// Routers started at time 0, their priorities in node order.
    fn started(configs: Vec<InstanceConfig>) -> Self {
        let nodes = configs.into_iter().map(|config| Node {
            instance: instance(config),
            timer: None,
            holds_addresses: false,
            alive: true,
            linked: true,
        });
        let mut bus = Bus {
            now: Instant::from_millis(0),
            nodes: nodes.collect(),
            transitions: Vec::new(),
        };
        for node in 0..bus.nodes.len() {
            bus.send(node, Event::Startup);
        }
        bus
    }

    /// Delivers `event` to `node`, then every advertisement that follows.
    fn send(&mut self, node: usize, event: Event) {
        let mut queue = VecDeque::from([(node, event)]);
        while let Some((index, event)) = queue.pop_front() {
            let linked: Vec<bool> = self.nodes.iter().map(|node| node.linked).collect();
            let node = &mut self.nodes[index];
            if !node.alive {
                continue;
            }
            let before = node.instance.state();
            for action in node.instance.handle(self.now, event) {
                match action {
                    Action::SendAdvertisement { priority } => {
                        let interval = node.instance.config().interval;
                        let source = address(index);
                        let event = Event::Advertisement {
                            priority,
                            source,
                            interval,
                        };
                        // Only routers on the link hear each other.
                        let hears = |peer: usize| peer != index && linked[peer] && linked[index];
                        queue.extend((0..linked.len()).filter(|&p| hears(p)).map(|p| (p, event)));
                    }
                    Action::AddAddresses => {
                        assert!(!node.holds_addresses, "node {index} adds twice");
                        node.holds_addresses = true;
                    }
                    Action::RemoveAddresses => {
                        assert!(node.holds_addresses, "node {index} removes what it lacks");
                        node.holds_addresses = false;
                    }
                    Action::SendGratuitousArps => assert!(node.holds_addresses),
                    Action::ScheduleTimer(at) => {
                        assert!(at >= self.now, "timer in the past");
                        node.timer = Some(at);
                    }
                    Action::CancelTimer => node.timer = None,
                }
            }
            let after = node.instance.state();
            assert_eq!(node.holds_addresses, after == State::Master, "node {index}");
            if after != before {
                self.transitions.push((self.now.as_millis(), index, after));
            }
        }
    }

    /// Advances the clock to `until` (ms), firing timers in order.
    fn run_until(&mut self, until: u64) {
        loop {
            let next = (self.nodes.iter().enumerate())
                .filter(|(_, node)| node.alive)
                .filter_map(|(index, node)| node.timer.map(|at| (at, index)))
                .min();
            match next {
                Some((at, index)) if at <= Instant::from_millis(until) => {
                    self.now = at;
                    self.nodes[index].timer = None;
                    self.send(index, Event::Timer);
                }
                _ => break,
            }
        }
        self.now = Instant::from_millis(until);
    }

    /// Like SIGKILL: no last word, the addresses stay where they were.
    fn kill(&mut self, node: usize) {
        self.nodes[node].alive = false;
    }

    fn restart(&mut self, node: usize, config: InstanceConfig) {
        self.nodes[node] = Node {
            instance: instance(config),
            timer: None,
            holds_addresses: false,
            alive: true,
            linked: true,
        };
        self.send(node, Event::Startup);
    }

    fn masters(&self) -> Vec<usize> {
        (self.nodes.iter().enumerate())
            .filter(|(_, node)| node.alive && node.instance.state() == State::Master)
            .map(|(index, _)| index)
            .collect()
    }

    /// Transitions to Master after `since` (ms), as (time in whole ms, node).
    fn takeovers_since(&self, since: u64) -> Vec<(u64, usize)> {
        (self.transitions.iter())
            .filter(|&&(at, _, state)| at > since && state == State::Master)
            .map(|&(at, node, _)| (at, node))
            .collect()
    }
}

mod timing;

mod election;

#[test]
fn a_master_woken_late_keeps_its_advertisement_rate() {
    let mut m = instance(InstanceConfig {
        interval: Duration::from_millis(10),
        ..config(0, OWNER_PRIORITY)
    });
    m.handle(Instant::from_millis(0), Event::Startup);
    assert_eq!(m.timer(), Some(Instant::from_millis(10)));
    // Each wake-up comes 3 ms late: the schedule stays on 10 ms steps.
    for step in 1..=100u64 {
        let actions = m.handle(Instant::from_millis(step * 10 + 3), Event::Timer);
        assert!(actions.contains(&Action::SendAdvertisement {
            priority: OWNER_PRIORITY
        }));
        assert_eq!(m.timer(), Some(Instant::from_millis((step + 1) * 10)));
    }
    // More than an interval late (the host stalled): start afresh, no burst.
    m.handle(Instant::from_millis(1035), Event::Timer);
    assert_eq!(m.timer(), Some(Instant::from_millis(1045)));
}
