package loadgen

import (
	"errors"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, to three
// significant digits (per action: two, to keep many actions cheap).
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
	histDigits  = 3
	actionDigit = 2
	// maxErrorMessages bounds the distinct transport error messages kept.
	maxErrorMessages = 8
)

// NewHistogram returns an empty latency histogram in microseconds, as the
// engine records them.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

func newActionHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, actionDigit)
}

// Counts are the outcome counters of a run or of one action in it.
type Counts struct {
	Requests          int64 // every recorded request, errors included
	OK                int64 // 2xx and 3xx answers
	TransportErrors   int64 // no HTTP answer
	ServerErrors      int64 // 5xx answers
	IntendedFailures  int64 // 4xx answers to deliberately failed actions
	Unexpected4xx     int64 // 4xx answers to actions meant to succeed
	UnexpectedSuccess int64 // 2xx/3xx answers to actions meant to fail
	Bytes             int64 // response bodies
	Status            map[int]int64
}

// Errors is what --max-errors counts: transport errors and 5xx answers.
func (c *Counts) Errors() int64 { return c.TransportErrors + c.ServerErrors }

// ErrorRate is Errors over Requests; 0 for an empty run.
func (c *Counts) ErrorRate() float64 {
	if c.Requests == 0 {
		return 0
	}
	return float64(c.Errors()) / float64(c.Requests)
}

func (c *Counts) add(s Sample) {
	c.Requests++
	c.Bytes += s.Bytes
	switch {
	case s.Err != nil:
		c.TransportErrors++
		return
	case s.Status >= 500:
		c.ServerErrors++
	case s.Status >= 400:
		if s.ExpectFailure {
			c.IntendedFailures++
		} else {
			c.Unexpected4xx++
		}
	default:
		if s.ExpectFailure {
			c.UnexpectedSuccess++
		} else {
			c.OK++
		}
	}
	if c.Status == nil {
		c.Status = make(map[int]int64)
	}
	c.Status[s.Status]++
}

func (c *Counts) merge(o *Counts) {
	c.Requests += o.Requests
	c.OK += o.OK
	c.TransportErrors += o.TransportErrors
	c.ServerErrors += o.ServerErrors
	c.IntendedFailures += o.IntendedFailures
	c.Unexpected4xx += o.Unexpected4xx
	c.UnexpectedSuccess += o.UnexpectedSuccess
	c.Bytes += o.Bytes
	for k, v := range o.Status {
		if c.Status == nil {
			c.Status = make(map[int]int64)
		}
		c.Status[k] += v
	}
}

// ActionResult is one kind of request's share of a run.
type ActionResult struct {
	Name    string
	Counts  Counts
	Latency *hdrhistogram.Histogram // µs
}

// ErrorMessage is a distinct transport error and how often it happened.
type ErrorMessage struct {
	Message string `json:"message"`
	Count   int64  `json:"count"`
}

// Result is everything a run recorded.
type Result struct {
	// Start is when the measured window opened: the first request was due
	// or sent no earlier.
	Start   time.Time
	Elapsed time.Duration // from the start to the last answer
	Clients int           // concurrent workers (ab -c, or players)
	Rate    float64       // the fixed rate asked for; 0: closed model
	Counts
	Latency *hdrhistogram.Histogram // µs, every recorded request
	// Lag is how late each request was sent after it was due, in µs (open
	// model only): the load tool's timer lateness plus any wait for a free
	// worker. It is part of Latency.
	Lag     *hdrhistogram.Histogram
	Actions []ActionResult // in Config.Actions order
	// ErrorMessages are the first distinct transport errors, most frequent first.
	ErrorMessages []ErrorMessage
}

// recorder collects samples in shards, each behind its own lock, and merges
// them at the end.
type recorder struct {
	names  []string
	shards []*shard
}

type shard struct {
	mu       sync.Mutex
	counts   Counts
	hist     *hdrhistogram.Histogram
	lag      *hdrhistogram.Histogram
	actions  []Counts
	ahist    []*hdrhistogram.Histogram
	messages map[string]int64
}

func newRecorder(n int, actions []string) *recorder {
	r := &recorder{names: actions, shards: make([]*shard, n)}
	for i := range r.shards {
		sh := &shard{
			counts:   Counts{Status: make(map[int]int64)},
			hist:     NewHistogram(),
			lag:      newActionHistogram(),
			actions:  make([]Counts, len(actions)),
			ahist:    make([]*hdrhistogram.Histogram, len(actions)),
			messages: make(map[string]int64),
		}
		for j := range actions {
			sh.actions[j].Status = make(map[int]int64)
			sh.ahist[j] = newActionHistogram()
		}
		r.shards[i] = sh
	}
	return r
}

func (sh *shard) record(s Sample, latency, lag time.Duration) {
	us := micros(latency)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.counts.add(s)
	_ = sh.hist.RecordValue(us) // clamped into range, so it cannot fail
	_ = sh.lag.RecordValue(micros(lag))
	if s.Action >= 0 && s.Action < len(sh.actions) {
		sh.actions[s.Action].add(s)
		_ = sh.ahist[s.Action].RecordValue(us)
	}
	if s.Err != nil {
		msg := errorMessage(s.Err)
		if _, seen := sh.messages[msg]; seen || len(sh.messages) < maxErrorMessages {
			sh.messages[msg]++
		}
	}
}

// micros clamps a duration into the histograms' range, in µs.
func micros(d time.Duration) int64 {
	return max(min(int64(d/time.Microsecond), histHighest), histLowest)
}

// errorMessage shortens a transport error to what tells errors apart: the
// URL in a *url.Error repeats on every line and hides the cause.
func errorMessage(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	return err.Error()
}

func (r *recorder) counts() (requests, errs int64) {
	for _, sh := range r.shards {
		sh.mu.Lock()
		requests += sh.counts.Requests
		errs += sh.counts.Errors()
		sh.mu.Unlock()
	}
	return requests, errs
}

func (r *recorder) result() *Result {
	res := &Result{Latency: NewHistogram(), Lag: newActionHistogram(), Actions: make([]ActionResult, len(r.names))}
	for j, name := range r.names {
		res.Actions[j] = ActionResult{Name: name, Latency: newActionHistogram()}
	}
	messages := make(map[string]int64)
	for _, sh := range r.shards {
		sh.mu.Lock()
		res.Counts.merge(&sh.counts)
		res.Latency.Merge(sh.hist)
		res.Lag.Merge(sh.lag)
		for j := range sh.actions {
			res.Actions[j].Counts.merge(&sh.actions[j])
			res.Actions[j].Latency.Merge(sh.ahist[j])
		}
		for m, n := range sh.messages {
			messages[m] += n
		}
		sh.mu.Unlock()
	}
	for m, n := range messages {
		res.ErrorMessages = append(res.ErrorMessages, ErrorMessage{Message: m, Count: n})
	}
	sort.Slice(res.ErrorMessages, func(i, j int) bool {
		a, b := res.ErrorMessages[i], res.ErrorMessages[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Message < b.Message
	})
	if len(res.ErrorMessages) > maxErrorMessages {
		res.ErrorMessages = res.ErrorMessages[:maxErrorMessages]
	}
	return res
}
