// Package loadgen drives HTTP load against the questlog API and summarises it
// the way ApacheBench does: requests per second, status codes, failed
// requests and latency percentiles kept in an HDR histogram.
//
// A run has two shapes. The single-request shape sends one prepared request
// (method, URL, headers, cookies, body) over and over, like ab. The players
// scenario plays many simulated players, each with its own cookie jar, who
// sign up, log in and then buy, sell, fill and check out carts and join and
// leave guilds in a weighted random mix, including deliberately failed
// actions.
//
// Timing follows one of two models. Without a rate, the run is closed: each
// worker sends its next request as soon as the previous one is answered.
// With a rate, the run is open: request i is due at start + i/rate, whichever
// worker is free takes it, and when no worker was free at that time its
// latency is measured from when it was due, so a stalled server shows in the
// latencies instead of silently lowering the request rate (coordinated
// omission). A worker that was idle and slept until the request was due
// measures from when it sent it, so the timer's own lateness is not counted;
// how late requests went out, for either reason, is reported as schedule lag.
//
// What counts as an error: a transport error (no HTTP answer: refused, reset,
// timed out) or a 5xx answer. A 4xx answer is not an error; in the scenario a
// 4xx to a deliberately failed action is an intended failure, and a 4xx to
// any other action is counted as unexpected.
//
// loadgen speaks HTTP only: it knows nothing of the game's rules, state,
// event log or lake beyond the public API contract in DESIGN.md.
package loadgen
