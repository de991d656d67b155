use preheat_usage::simulate::*;
use preheat_usage::*;
use std::collections::HashMap;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str, default: f64| -> f64 {
        args.iter().position(|a| a == name).map(|i| args[i + 1].parse().unwrap()).unwrap_or(default)
    };
    let g = GeneratorConfig {
        keys: get("--keys", 20000.0) as usize,
        days: get("--days", 7.0) as u32,
        requests_per_day: get("--rpd", 500_000.0) as u64,
        peak_width_hours: get("--width", 2.0),
        seasonal_share: get("--seasonal", 0.8),
        ..GeneratorConfig::default()
    };
    let mut events = Vec::new();
    generate(&g, |e| { events.push(e.clone()); Ok(()) }).unwrap();
    let c = SimConfig { budget: get("--budget", 2000.0) as usize, alpha: get("--alpha", 0.2), beta: get("--beta", 0.01), gamma: get("--gamma", 0.3), ..SimConfig::default() };
    let mut tracker = UsageTracker::new(c.tracker_config()).unwrap();
    let hour = 3_600_000u64;
    let mut i = 0;
    let start = events[0].ts_ms;
    let mut last: HashMap<String, f64> = HashMap::new();
    let (mut e_react, mut e_pred, mut n) = (0.0, 0.0, 0);
    let (mut sq_react, mut sq_pred) = (0.0, 0.0);
    let mut h = start / hour;
    while i < events.len() {
        tracker.advance(h * hour);
        let pred: HashMap<String, f64> = predict(&tracker, h * hour, usize::MAX).keys.into_iter().map(|p| (p.name, p.count)).collect();
        let mut actual: HashMap<String, f64> = HashMap::new();
        while i < events.len() && events[i].ts_ms / hour == h {
            *actual.entry(events[i].key.clone()).or_default() += 1.0;
            tracker.record(&events[i]);
            i += 1;
        }
        if h * hour >= start + 2 * 86_400_000 {
            // compare over tracked keys
            for (k, p) in &pred {
                let a = actual.get(k).copied().unwrap_or(0.0);
                let r = last.get(k).copied().unwrap_or(0.0);
                e_react += (r - a).abs(); e_pred += (p - a).abs();
                sq_react += ((1.0 - (-r).exp()) - if a > 0.0 {1.0} else {0.0}).powi(2); sq_pred += ((1.0 - (-p).exp()) - if a > 0.0 {1.0} else {0.0}).powi(2);
                n += 1;
            }
        }
        last = actual;
        h += 1;
    }
    println!("n {n} tracked {} MAE reactive {:.3} predictive {:.3}  Brier {:.4} {:.4}", tracker.tracked_names(tracker::Tracking::Keys).count(), e_react / n as f64, e_pred / n as f64, sq_react / n as f64, sq_pred / n as f64);
}
