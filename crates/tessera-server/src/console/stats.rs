//! Overview numbers and the per-day chart.
//!
//! The `Store` trait has no aggregate queries yet, so these are computed from the list methods,
//! page by page, with a bound on how much is read ([`MAX_ROWS`]); past it the overview says
//! its numbers are lower bounds. A `Store::overview(now)` with `COUNT(*)`/`GROUP BY day`
//! queries should replace this (see the console's report).

use std::future::Future;
use std::pin::Pin;

use time::{Date, Duration, OffsetDateTime};

use crate::error::ApiResult;
use crate::store::{Page, Store};

/// Rows per store call while scanning.
const SCAN_PAGE: i64 = 1_000;
/// At most this many rows are read per list while computing the overview.
pub const MAX_ROWS: i64 = 20_000;
/// Days shown in the chart, today included.
pub const CHART_DAYS: usize = 14;

/// What a `Store` list method returns (`async_trait` boxes its futures).
pub(super) type Fetch<'a, T> = Pin<Box<dyn Future<Output = ApiResult<Vec<T>>> + Send + 'a>>;

/// Reads pages of `fetch` until a short page or [`MAX_ROWS`], handing each row to `each`.
/// `each` returns `false` to stop early. Returns whether the bound cut the scan short.
pub(super) async fn scan<'a, T>(
    mut fetch: impl FnMut(Page) -> Fetch<'a, T>,
    mut each: impl FnMut(&T) -> bool,
) -> ApiResult<bool> {
    let mut offset = 0;
    while offset < MAX_ROWS {
        let rows = fetch(Page {
            limit: SCAN_PAGE,
            offset,
        })
        .await?;
        for row in &rows {
            if !each(row) {
                return Ok(false);
            }
        }
        if (rows.len() as i64) < SCAN_PAGE {
            return Ok(false);
        }
        offset += SCAN_PAGE;
    }
    Ok(true)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub keys: u64,
    pub revoked_keys: u64,
    pub active_seats: u64,
    pub api_keys: u64,
    pub revoked_api_keys: u64,
    pub instances: u64,
    pub api_token_fetches: u64,
    pub open_flags: u64,
    /// Some list was longer than [`MAX_ROWS`]: the counts are lower bounds.
    pub truncated: bool,
}

pub async fn counts(store: &dyn Store) -> ApiResult<Counts> {
    let mut c = Counts::default();
    let mut truncated = false;
    truncated |= scan(
        |p| store.list_keys(p),
        |k| {
            c.keys += 1;
            if k.revoked {
                c.revoked_keys += 1;
            } else {
                c.active_seats += u64::try_from(k.active_seat_count).unwrap_or(0);
            }
            true
        },
    )
    .await?;
    truncated |= scan(
        |p| store.list_api_keys(p),
        |k| {
            c.api_keys += 1;
            if k.revoked {
                c.revoked_api_keys += 1;
            }
            true
        },
    )
    .await?;
    truncated |= scan(
        |p| store.list_instances(None, p),
        |i| {
            c.instances += 1;
            c.api_token_fetches += u64::try_from(i.fetch_count).unwrap_or(0);
            true
        },
    )
    .await?;
    truncated |= scan(
        |p| store.list_flags("open", p),
        |_| {
            c.open_flags += 1;
            true
        },
    )
    .await?;
    c.truncated = truncated;
    Ok(c)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub date: Date,
    pub activations: u64,
    pub token_fetches: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub days: Vec<Day>,
    /// The audit log had more rows in the period than were read.
    pub truncated: bool,
}

/// Activations (`activated`) and license-token fetches (`refreshed`) per UTC day over the
/// last [`CHART_DAYS`] days, counted from the audit log (newest first, so the scan stops at
/// the first row older than the period).
pub async fn activity(store: &dyn Store, now: OffsetDateTime) -> ApiResult<Activity> {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let first = today - Duration::days(CHART_DAYS as i64 - 1);
    let mut days: Vec<Day> = (0..CHART_DAYS as i64)
        .map(|i| Day {
            date: first + Duration::days(i),
            activations: 0,
            token_fetches: 0,
        })
        .collect();
    let truncated = scan(
        |p| store.list_audit(None, p),
        |a| {
            let Some(date) = tessera_core::timefmt::parse(&a.created_at)
                .map(|t| t.to_offset(time::UtcOffset::UTC).date())
            else {
                return true;
            };
            if date < first {
                return false;
            }
            let index = (date - first).whole_days();
            if let Some(day) = usize::try_from(index).ok().and_then(|i| days.get_mut(i)) {
                match a.action.as_str() {
                    "activated" => day.activations += 1,
                    "refreshed" => day.token_fetches += 1,
                    _ => {}
                }
            }
            true
        },
    )
    .await?;
    Ok(Activity { days, truncated })
}

/// One bar of the chart, in SVG user units.
pub struct Bar {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    /// `bar-act` or `bar-fetch`: the colour, from the stylesheet.
    pub class: &'static str,
    pub title: String,
}

pub struct Tick {
    pub x: String,
    pub y: String,
    pub label: String,
}

/// The chart as shapes; the template writes the SVG (so every text in it is escaped).
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    pub x_labels: Vec<Tick>,
    pub y_labels: Vec<Tick>,
    /// Gridlines: y positions.
    pub grid: Vec<String>,
    pub plot_left: String,
    pub plot_right: String,
    pub baseline: String,
    pub rows: Vec<ChartRow>,
    pub summary: String,
}

pub struct ChartRow {
    pub date: String,
    pub activations: u64,
    pub token_fetches: u64,
}

/// A round upper bound for the y axis: 1, 2, 5, 10, 20, 50, …
fn nice_max(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= v.max(1) {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

fn short_date(d: Date) -> String {
    format!("{:02}-{:02}", u8::from(d.month()), d.day())
}

pub fn chart(activity: &Activity) -> Chart {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 52.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 28.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max = activity
        .days
        .iter()
        .map(|d| d.activations.max(d.token_fetches))
        .max()
        .unwrap_or(0);
    let top = nice_max(max);
    let n = activity.days.len().max(1) as f64;
    let group = plot_w / n;
    let bar_w = group * 0.36;
    let scale = |v: u64| v as f64 / top as f64 * plot_h;
    let mut bars = Vec::new();
    let mut x_labels = Vec::new();
    for (i, d) in activity.days.iter().enumerate() {
        let gx = LEFT + group * i as f64;
        for (j, (v, class, what)) in [
            (d.activations, "bar-act", "activations"),
            (d.token_fetches, "bar-fetch", "token fetches"),
        ]
        .into_iter()
        .enumerate()
        {
            let h = scale(v);
            bars.push(Bar {
                x: num(gx + group * 0.12 + bar_w * j as f64),
                y: num(TOP + plot_h - h),
                w: num(bar_w),
                h: num(h),
                class,
                title: format!("{}: {v} {what}", d.date),
            });
        }
        // Every other day, counted back from today, so the latest day always has a label.
        if (activity.days.len() - 1 - i).is_multiple_of(2) {
            x_labels.push(Tick {
                x: num(gx + group / 2.0),
                y: num(H - 8.0),
                label: short_date(d.date),
            });
        }
    }
    let y_labels: Vec<Tick> = [0, top / 2, top]
        .into_iter()
        .map(|v| Tick {
            x: num(LEFT - 6.0),
            y: num(TOP + plot_h - scale(v) + 4.0),
            label: v.to_string(),
        })
        .collect();
    let grid = [top / 2, top]
        .into_iter()
        .map(|v| num(TOP + plot_h - scale(v)))
        .collect();
    let total_act: u64 = activity.days.iter().map(|d| d.activations).sum();
    let total_fetch: u64 = activity.days.iter().map(|d| d.token_fetches).sum();
    Chart {
        width: W as u32,
        height: H as u32,
        bars,
        x_labels,
        y_labels,
        grid,
        plot_left: num(LEFT),
        plot_right: num(W - RIGHT),
        baseline: num(TOP + plot_h),
        rows: activity
            .days
            .iter()
            .map(|d| ChartRow {
                date: d.date.to_string(),
                activations: d.activations,
                token_fetches: d.token_fetches,
            })
            .collect(),
        summary: format!(
            "{} and {} in the last {} days.",
            plural(total_act, "activation", "activations"),
            plural(total_fetch, "token fetch", "token fetches"),
            activity.days.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(500), 500);
        assert_eq!(nice_max(501), 1_000);
    }

    #[test]
    fn chart_has_two_bars_a_day_and_a_label_on_the_last_day() {
        let days: Vec<Day> = (0..CHART_DAYS as i64)
            .map(|i| Day {
                date: date!(2026 - 03 - 01) + Duration::days(i),
                activations: i as u64,
                token_fetches: 2,
            })
            .collect();
        let c = chart(&Activity {
            days,
            truncated: false,
        });
        assert_eq!(c.bars.len(), 2 * CHART_DAYS);
        assert_eq!(c.x_labels.last().map(|t| t.label.as_str()), Some("03-14"));
        assert_eq!(c.y_labels.last().map(|t| t.label.as_str()), Some("20"));
        // The tallest bar (13 of 20) fills 65% of the plot height.
        let tallest: f64 = c.bars[26].h.parse().unwrap();
        assert!((tallest - 0.65 * 182.0).abs() < 0.1);
        assert!(c.summary.starts_with("91 activations and 28 token fetches"));
    }
}
