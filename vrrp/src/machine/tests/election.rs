//! Several routers on a [`Bus`]: elections, failover, preemption, tracking.

use super::*;

/// Priorities 200, 100, 150: node 0 wins at 3000 + 56 * 1000 / 256 = 3218.75
/// ms and advertises every second from then on (…, 9218.75, 10218.75, …).
fn three_routers() -> Bus {
    Bus::started(vec![config(0, 200), config(1, 100), config(2, 150)])
}

#[test]
fn the_highest_priority_wins_and_stays() {
    let mut bus = three_routers();
    bus.run_until(60_000);
    assert_eq!(bus.masters(), [0]);
    assert_eq!(bus.takeovers_since(0), [(3218, 0)]);
    // Every router entered Backup once, then only node 0 moved: no flapping.
    assert_eq!(bus.transitions.len(), 4);
}

#[test]
fn a_killed_master_is_replaced_after_the_master_down_interval() {
    let mut bus = three_routers();
    bus.run_until(10_000);
    bus.kill(0);
    // Last advert at 9218.75. Node 2: 3000 + 106 * 1000 / 256 = 3414.06 ms
    // later; node 1 (3609.375 ms) hears node 2 first and stays Backup.
    bus.run_until(12_631);
    assert_eq!(bus.masters(), [] as [usize; 0]);
    bus.run_until(60_000);
    assert_eq!(bus.takeovers_since(10_000), [(12_632, 2)]);
    assert_eq!(bus.masters(), [2]);
    let transition = bus.nodes[2].instance.last_transition().unwrap();
    assert_eq!(
        transition,
        Transition {
            at: Instant(12_632_812),
            from: State::Backup,
            to: State::Master,
            reason: Reason::MasterDown
        }
    );
}

#[test]
fn a_graceful_stop_hands_over_after_skew_time() {
    let mut bus = three_routers();
    bus.run_until(10_000);
    bus.send(0, Event::Shutdown);
    assert!(!bus.nodes[0].holds_addresses);
    // Node 2's skew: 106 * 1000 / 256 = 414.06 ms.
    bus.run_until(60_000);
    assert_eq!(bus.takeovers_since(10_000), [(10_414, 2)]);
    assert_eq!(bus.masters(), [2]);
}

/// Node 0 killed at 10 s (node 2 master from 12632.8, adverts at …, 19632.8,
/// 20632.8, …) and restarted at 20 s with `config`.
fn returning_router(config: InstanceConfig) -> Bus {
    let mut bus = three_routers();
    bus.run_until(10_000);
    bus.kill(0);
    bus.run_until(20_000);
    bus.restart(0, config);
    bus
}

#[test]
fn a_higher_priority_router_preempts_when_it_returns() {
    let mut bus = returning_router(config(0, 200));
    // It ignores node 2's lower adverts and its own Master_Down timer fires.
    bus.run_until(60_000);
    assert_eq!(bus.takeovers_since(20_000), [(23_218, 0)]);
    assert_eq!(bus.masters(), [0]);
    let transition = bus.nodes[2].instance.last_transition().unwrap();
    assert_eq!(
        (transition.at, transition.from, transition.to),
        (Instant(23_218_750), State::Master, State::Backup)
    );
    assert_eq!(
        transition.reason,
        Reason::Preempted {
            by: address(0),
            priority: 200
        }
    );
    assert_eq!(bus.nodes[1].instance.master(), Some(address(0)));
}

#[test]
fn nopreempt_leaves_a_lower_priority_master_alone() {
    let mut bus = returning_router(InstanceConfig {
        preempt: false,
        ..config(0, 200)
    });
    bus.run_until(600_000);
    assert_eq!(bus.takeovers_since(20_000), []);
    assert_eq!(bus.masters(), [2]);
}

#[test]
fn preempt_delay_postpones_the_takeover() {
    let delay = Duration::from_secs(10);
    let mut bus = returning_router(InstanceConfig {
        preempt_delay: delay,
        ..config(0, 200)
    });
    // Until 30 s it obeys node 2; the last advert it obeys is at 29632.8, so
    // its timer fires 3218.75 ms later.
    bus.run_until(30_000);
    assert_eq!(bus.masters(), [2]);
    bus.run_until(60_000);
    assert_eq!(bus.takeovers_since(20_000), [(32_851, 0)]);
    assert_eq!(bus.masters(), [0]);
}

#[test]
fn a_tracking_weight_below_a_peer_moves_the_master() {
    let mut bus = Bus::started(vec![config(0, 200), config(1, 150)]);
    bus.run_until(10_000);
    // The tracked backend fails: weight 60 brings node 0 to 140 < 150.
    bus.send(0, Event::SetPriority(140));
    // Node 1 ignores the 140 advert; its timer from the 9218 advert fires
    // 3000 + 106 * 1000 / 256 = 3414 ms later, and node 0 yields to it.
    bus.run_until(20_000);
    assert_eq!(bus.takeovers_since(10_000), [(12_632, 1)]);
    assert_eq!(bus.masters(), [1]);
    // Repaired: node 0 is back to 200 and preempts. The timer it set on the
    // 19632 advert, at priority 140, is 3000 + 116 * 1000 / 256 = 3453 ms.
    bus.send(0, Event::SetPriority(200));
    bus.run_until(60_000);
    assert_eq!(bus.takeovers_since(20_000), [(23_085, 0)]);
    assert_eq!(bus.masters(), [0]);
}

#[test]
fn a_healed_split_keeps_the_higher_address() {
    let mut bus = Bus::started(vec![config(0, 100), config(1, 100)]);
    bus.nodes[1].linked = false;
    bus.run_until(10_000);
    assert_eq!(
        bus.masters(),
        [0, 1],
        "each side of the split elects itself"
    );
    bus.nodes[1].linked = true;
    bus.run_until(60_000);
    assert_eq!(bus.masters(), [1]);
}

#[test]
fn ten_millisecond_adverts_fail_over_within_forty_milliseconds() {
    let fast = |node, priority| InstanceConfig {
        interval: Duration::from_millis(10),
        ..config(node, priority)
    };
    let mut bus = Bus::started(vec![fast(0, 200), fast(1, 100), fast(2, 150)]);
    bus.run_until(1_000);
    assert_eq!(bus.masters(), [0]);
    let last_advert = bus.nodes[0].timer.unwrap().as_millis() - 10;
    bus.kill(0);
    bus.run_until(2_000);
    // Node 2: 3 * 10 + 106 * 10 / 256 = 34 ms after the last advert.
    assert_eq!(bus.takeovers_since(1_000), [(last_advert + 34, 2)]);
}
