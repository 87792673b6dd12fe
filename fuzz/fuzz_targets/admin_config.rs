//! A pushed config body as the admin API handles it: the object count, the
//! JSON decoding and `validate` never panic, and a config that validates
//! survives a JSON round trip.
#![no_main]

use fairlead_dataplane::DataplaneConfig;
use fairlead_dataplane::config::limits::{MAX_JSON_OBJECTS, count_json_objects};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if count_json_objects(data, MAX_JSON_OBJECTS) > MAX_JSON_OBJECTS {
        return;
    }
    let Ok(config) = serde_json::from_slice::<DataplaneConfig>(data) else {
        return;
    };
    let Ok(config) = config.validate() else {
        return;
    };
    let json = config.to_json_pretty();
    let again = DataplaneConfig::from_json(&json).expect("a valid config reads back");
    assert_eq!(again, config);
});
