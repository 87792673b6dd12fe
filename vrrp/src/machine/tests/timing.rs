//! One instance at a time: exact actions and timer instants.

use super::*;

#[test]
fn master_down_is_three_intervals_plus_skew() {
    // Priority 100, 1 s: skew = 156 * 1000 / 256 = 609.375 ms, so 3609.375 ms.
    let mut backup = instance(config(0, 100));
    assert_eq!(
        backup.master_down_interval(),
        Duration::from_micros(3_609_375)
    );
    assert_eq!(
        backup.handle(Instant::from_millis(0), Event::Startup),
        [Action::ScheduleTimer(Instant(3_609_375))]
    );
    assert_eq!(backup.state(), State::Backup);
    assert_eq!(
        backup.handle(Instant(3_609_374), Event::Timer),
        [],
        "early expiry is ignored"
    );
    assert_eq!(backup.state(), State::Backup);
    assert_eq!(
        backup.handle(Instant(3_609_375), Event::Timer),
        [
            Action::SendAdvertisement { priority: 100 },
            Action::AddAddresses,
            Action::SendGratuitousArps,
            Action::ScheduleTimer(Instant(4_609_375)),
        ]
    );
    assert_eq!(backup.state(), State::Master);
    assert_eq!(backup.master(), Some(address(0)));
}

#[test]
fn skew_depends_on_priority_and_interval() {
    let down = |version, priority, interval| {
        let config = InstanceConfig {
            version,
            interval,
            ..config(0, priority)
        };
        instance(config).master_down_interval()
    };
    // 56 * 1000 / 256 = 218.75 ms.
    assert_eq!(
        down(Version::V2, 200, SECOND),
        Duration::from_micros(3_218_750)
    );
    // 10 ms adverts: 156 * 10 / 256 = 6.094 ms, so backups still differ.
    assert_eq!(
        down(Version::V3, 100, Duration::from_millis(10)),
        Duration::from_micros(36_093)
    );
    assert_eq!(
        down(Version::V3, 200, Duration::from_millis(10)),
        Duration::from_micros(32_187)
    );
    assert_eq!(
        down(Version::V3, 255, SECOND),
        Duration::from_micros(3_003_906)
    );
}

#[test]
fn v3_learns_the_master_interval_and_v2_keeps_its_own() {
    let fast = Event::Advertisement {
        priority: 200,
        source: address(1),
        interval: Duration::from_millis(100),
    };
    let mut v3 = instance(config(0, 100));
    v3.handle(Instant::from_millis(0), Event::Startup);
    // 3 * 100 + 156 * 100 / 256 = 360.9375 ms.
    assert_eq!(
        v3.handle(Instant::from_millis(1000), fast),
        [Action::ScheduleTimer(Instant(1_360_937))]
    );
    assert_eq!(v3.master(), Some(address(1)));

    let mut v2 = instance(InstanceConfig {
        version: Version::V2,
        ..config(0, 100)
    });
    v2.handle(Instant::from_millis(0), Event::Startup);
    assert_eq!(
        v2.handle(Instant::from_millis(1000), fast),
        [Action::ScheduleTimer(Instant(4_609_375))]
    );
}

#[test]
fn the_owner_is_master_at_startup() {
    let mut owner = instance(config(0, OWNER_PRIORITY));
    assert_eq!(owner.last_transition(), None);
    assert_eq!(
        owner.handle(Instant::from_millis(5), Event::Startup),
        [
            Action::SendAdvertisement { priority: 255 },
            Action::AddAddresses,
            Action::SendGratuitousArps,
            Action::ScheduleTimer(Instant::from_millis(1005)),
        ]
    );
    assert_eq!(
        owner.handle(Instant::from_millis(1005), Event::Timer),
        [
            Action::SendAdvertisement { priority: 255 },
            Action::ScheduleTimer(Instant::from_millis(2005)),
        ]
    );
}

#[test]
fn master_shutdown_sends_priority_zero_and_backup_waits_only_skew() {
    let mut master = instance(config(0, OWNER_PRIORITY));
    master.handle(Instant::from_millis(0), Event::Startup);
    assert_eq!(
        master.handle(Instant::from_millis(500), Event::Shutdown),
        [
            Action::CancelTimer,
            Action::SendAdvertisement { priority: 0 },
            Action::RemoveAddresses
        ]
    );
    assert_eq!(master.state(), State::Initialize);
    let transition = master.last_transition().unwrap();
    assert_eq!(
        (transition.at, transition.from, transition.reason),
        (Instant::from_millis(500), State::Master, Reason::Shutdown)
    );
    assert_eq!(master.handle(Instant::from_millis(600), Event::Timer), []);

    let mut backup = instance(config(1, 100));
    backup.handle(Instant::from_millis(0), Event::Startup);
    assert_eq!(
        backup.handle(Instant::from_millis(500), advert(0, 0)),
        [Action::ScheduleTimer(Instant(1_109_375))]
    );
    assert_eq!(
        backup.handle(Instant::from_millis(700), Event::Shutdown),
        [Action::CancelTimer]
    );
    assert_eq!(backup.handle(Instant(1_109_375), Event::Timer), []);
    assert_eq!(backup.state(), State::Initialize);
}

#[test]
fn master_reasserts_when_a_peer_steps_down_and_ignores_lower_peers() {
    let mut master = instance(config(0, OWNER_PRIORITY));
    master.handle(Instant::from_millis(0), Event::Startup);
    assert_eq!(
        master.handle(Instant::from_millis(300), advert(0, 1)),
        [
            Action::SendAdvertisement { priority: 255 },
            Action::ScheduleTimer(Instant::from_millis(1300)),
        ]
    );
    assert_eq!(master.handle(Instant::from_millis(400), advert(254, 1)), []);
    assert_eq!(master.state(), State::Master);
}

#[test]
fn equal_priority_masters_yield_to_the_higher_address() {
    let mut middle = instance(config(1, 100));
    middle.handle(Instant::from_millis(0), Event::Startup);
    middle.handle(Instant(3_609_375), Event::Timer);
    assert_eq!(
        middle.handle(Instant::from_millis(3700), advert(100, 0)),
        [],
        "lower address loses"
    );
    assert_eq!(
        middle.handle(Instant::from_millis(3800), advert(100, 2)),
        [
            Action::RemoveAddresses,
            Action::ScheduleTimer(Instant(7_409_375))
        ]
    );
    assert_eq!(middle.state(), State::Backup);
    assert_eq!(middle.master(), Some(address(2)));
}

#[test]
fn priority_changes_are_advertised_by_a_master_at_once() {
    let mut master = instance(config(0, 200));
    master.handle(Instant::from_millis(0), Event::Startup);
    master.handle(Instant(3_218_750), Event::Timer);
    assert_eq!(
        master.handle(Instant::from_millis(3500), Event::SetPriority(140)),
        [
            Action::SendAdvertisement { priority: 140 },
            Action::ScheduleTimer(Instant::from_millis(4500)),
        ]
    );
    assert_eq!(
        master.handle(Instant::from_millis(3600), Event::SetPriority(140)),
        [],
        "no change"
    );
    master.handle(Instant::from_millis(3700), Event::SetPriority(0));
    assert_eq!(master.priority(), 1, "0 is reserved for stepping down");
}

#[test]
fn restart_after_shutdown() {
    let mut backup = instance(config(0, 100));
    backup.handle(Instant::from_millis(0), Event::Startup);
    assert_eq!(
        backup.handle(Instant::from_millis(10), Event::Startup),
        [],
        "already running"
    );
    backup.handle(Instant::from_millis(20), Event::Shutdown);
    assert_eq!(
        backup.handle(Instant::from_millis(30), Event::Startup),
        [Action::ScheduleTimer(Instant(3_639_375))]
    );
}

#[test]
fn configs_out_of_range_name_the_field() {
    let field = |config: InstanceConfig| match Instance::new(config).unwrap_err() {
        Error::Config { field, .. } => field,
        other => panic!("{other}"),
    };
    assert_eq!(
        field(InstanceConfig {
            vrid: 0,
            ..config(0, 100)
        }),
        "vrid"
    );
    assert_eq!(field(config(0, 0)), "priority");
    let v2 = InstanceConfig {
        version: Version::V2,
        interval: Duration::from_millis(1500),
        ..config(0, 1)
    };
    assert_eq!(field(v2), "interval");
    let v3 = InstanceConfig {
        interval: Duration::from_millis(5),
        ..config(0, 1)
    };
    assert_eq!(field(v3.clone()), "interval");
    let message = Instance::new(v3).unwrap_err().to_string();
    assert_eq!(
        message,
        "VRRP instance VRID 51: interval: VRRPv3 needs whole centiseconds, 10 ms - 40.95 s"
    );
}

#[test]
fn a_preempting_backup_obeys_equal_priority_and_ignores_lower() {
    let mut backup = instance(config(1, 100));
    backup.handle(Instant::from_millis(0), Event::Startup);
    // Equal priority, even from a lower address: it resets the timer.
    assert_eq!(
        backup.handle(Instant::from_millis(1000), advert(100, 0)),
        [Action::ScheduleTimer(Instant(4_609_375))]
    );
    assert_eq!(backup.handle(Instant::from_millis(2000), advert(99, 0)), []);
    assert_eq!(backup.timer(), Some(Instant(4_609_375)));
}
