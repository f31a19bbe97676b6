package game

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/state"
)

// A player's actions are carried out in order by a leader: the first
// action that finds the player idle starts one, which takes every action
// waiting for the player at that moment, decides them one after another on
// the player's state as the ones before left it, stores their changes as
// one intent, records their events as one group (the log takes all of them
// or none), applies the changes, and answers them; then it takes what
// arrived meanwhile. One player's actions thus cost one store write, one
// produce round trip and one commit per round, however many there are,
// while every guarantee holds for each of them: an action is decided on
// the state that all the actions before it (in the log's order) left.

// decision decides one action on the player as the actions before it left
// it (p; p.exists says whether the account exists). It changes p as the
// action does and returns the state.Change to store, or nil for an action
// that changes nothing; or a *Rejection (and leaves p as it was).
type decision func(p *running) (*state.Change, error)

// running is a player's state during a leader's round.
type running struct {
	state.Player
	exists bool
}

// job is one action waiting for, or taken by, its player's leader.
type job struct {
	a      *action
	decide decision
	state  atomic.Int32 // jobQueued, jobTaken or jobAbandoned
	err    error        // the outcome, once done is closed
	done   chan struct{}
}

const (
	jobQueued int32 = iota
	jobTaken
	jobAbandoned
)

// maxRound bounds the actions of one round: one group of events.
const maxRound = 256

// lines is every player's queue of actions, while it has one.
type lines struct {
	mu     sync.Mutex
	byUser map[string]*line
}

// line is a player's queue and whether a leader serves it.
type line struct {
	waiting []*job
	leading bool
	wake    chan struct{} // capacity 1: an action joined the line
}

// roundLinger is how long a leader with changes not yet applied waits for
// more actions before it applies them on their own: a player who acts
// again at once (a client that sends its next request as soon as it has
// its answer) shares the next round's write instead of paying its own.
const roundLinger = 500 * time.Microsecond

// play carries out an action on user: it waits its turn behind the
// player's earlier actions (at most until the request's deadline), and
// returns the decision's error, or why the action could not be carried
// out.
func (s *Service) play(a *action, user string, decide decision) error {
	j := &job{a: a, decide: decide, done: make(chan struct{})}
	s.lines.mu.Lock()
	l := s.lines.byUser[user]
	if l == nil {
		l = &line{wake: make(chan struct{}, 1)}
		s.lines.byUser[user] = l
	}
	l.waiting = append(l.waiting, j)
	lead := !l.leading
	l.leading = true
	s.lines.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	if lead {
		s.running.Go(func() { s.lead(user, l) })
	}
	select {
	case <-j.done:
		return j.err
	case <-a.ctx.Done():
		if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
			return fmt.Errorf("%w: waited for the player's earlier actions", ErrPlayerBusy)
		}
		<-j.done // taken: its round ends by its deadline
		return j.err
	}
}

// lead serves user's line until it is empty: a round at a time, holding
// the player's lock from the first round to the last.
func (s *Service) lead(user string, l *line) {
	r := &round{s: s, user: user}
	defer r.release()
	var linger *time.Timer
	for {
		jobs := s.take(l)
		if jobs == nil && r.pending != nil {
			if linger == nil {
				linger = time.NewTimer(roundLinger)
			} else {
				linger.Reset(roundLinger)
			}
			select {
			case <-l.wake:
			case <-linger.C:
			}
			if jobs = s.take(l); jobs == nil {
				r.flush()
				continue
			}
		}
		if jobs == nil {
			if s.retire(user, l) {
				return
			}
			continue
		}
		if !r.play(jobs) {
			// The lock went to a commit that waits for the store: the
			// actions left wait for it under a new leader.
			if !s.retire(user, l) {
				s.running.Go(func() { s.lead(user, l) })
			}
			return
		}
	}
}

// take removes the queued jobs of the next round from the line.
func (s *Service) take(l *line) []*job {
	s.lines.mu.Lock()
	defer s.lines.mu.Unlock()
	var jobs []*job
	kept := 0
	for _, j := range l.waiting {
		switch {
		case len(jobs) < maxRound && j.state.CompareAndSwap(jobQueued, jobTaken):
			jobs = append(jobs, j)
		case j.state.Load() == jobQueued:
			l.waiting[kept] = j
			kept++
		}
	}
	clear(l.waiting[kept:])
	l.waiting = l.waiting[:kept]
	return jobs
}

// retire ends the line's leadership if nobody waits in it, and says so.
func (s *Service) retire(user string, l *line) bool {
	s.lines.mu.Lock()
	defer s.lines.mu.Unlock()
	for _, j := range l.waiting {
		if j.state.Load() == jobQueued {
			return false
		}
	}
	l.waiting = nil
	l.leading = false
	delete(s.lines.byUser, user)
	return true
}

// round is a leader's state across its rounds.
type round struct {
	s      *Service
	user   string
	unlock func()
	// p is the player's state after every action acknowledged so far,
	// when valid; pending holds the last round's changes, in the log and
	// not yet in the store (the next round's store write applies them).
	p       running
	valid   bool
	pending *state.Intent
}

func (r *round) release() {
	if r.unlock != nil {
		r.unlock()
	}
}

// flush applies the changes of the last round before the leader goes.
func (r *round) flush() {
	if r.pending == nil || r.unlock == nil {
		return
	}
	in := *r.pending
	r.pending = nil
	deadline := time.Now().Add(r.s.timeout)
	r.commit(r.s.deadlines.until(deadline), deadline, in)
}

// finish ends the jobs: each gets err unless it has its own.
func finishJobs(jobs []*job, err error) {
	for _, j := range jobs {
		if j.err == nil {
			j.err = err
		}
		close(j.done)
	}
}

// play is one round: it decides jobs in order, records their events as one
// group, applies their changes, and answers them. It returns false when it
// handed the player's lock to a commit that waits for the store.
func (r *round) play(jobs []*job) bool {
	s := r.s
	deadline := jobs[0].a.deadline
	for _, j := range jobs[1:] {
		if j.a.deadline.Before(deadline) {
			deadline = j.a.deadline
		}
	}
	ctx := s.deadlines.until(deadline)
	first := jobs[0].a
	if r.unlock == nil {
		unlock, err := s.store.Lock(ctx, r.user)
		if err != nil {
			finishJobs(jobs, s.storeFailure(first, "lock "+r.user, err))
			return true
		}
		r.unlock = unlock
	}
	if !r.valid {
		if err := r.load(ctx, first); err != nil {
			finishJobs(jobs, err)
			return true
		}
	}

	// Decide, in order, on the state the actions before left.
	var (
		events  = make([]*event.Event, 0, len(jobs))
		changes []state.Change
		named   *action // the first action with a change: names the intent
	)
	for _, j := range jobs {
		if j.a.clientGone() {
			j.err = fmt.Errorf("%w: before its event was recorded", ErrClientGone)
		} else {
			change, err := j.decide(&r.p)
			j.err = err
			if err == nil && change != nil {
				changes = append(changes, *change)
				if named == nil {
					named = j.a
				}
			}
		}
		if j.err != nil {
			var rej *Rejection
			if !errors.As(j.err, &rej) {
				j.a.ev.Fail("internal_error")
			} else {
				j.a.ev.Fail(rej.Reason)
			}
		}
		events = append(events, &j.a.ev)
	}

	var in state.Intent
	if named != nil {
		at := s.journal.Next(r.user)
		in = state.Intent{EventID: named.ev.ID, Partition: at.Partition, After: at.Offset, Created: s.now(), Changes: state.Compact(changes)}
		// One store write applies the last round's changes (in the log
		// already) and records this round's intent.
		var err error
		if r.pending != nil {
			err = s.store.Advance(ctx, r.user, *r.pending, in)
		} else {
			err = s.store.Prepare(ctx, r.user, in)
		}
		if err != nil {
			return r.refuse(jobs, named, in, err)
		}
		r.pending = nil
	}
	if _, err := s.journal.RecordGroup(ctx, r.user, events); err != nil {
		// Not acknowledged, which is not proof that it is not in the log:
		// the intent stays pending, and settle applies it if the log holds
		// the events after all, or drops it. The refused actions' failed
		// events are in the same doubt.
		r.valid = false
		err = s.logFailure(err)
		for _, j := range jobs {
			j.err = err
		}
		finishJobs(jobs, nil)
		return true
	}
	for _, j := range jobs {
		j.a.recorded = true
	}
	if named != nil {
		if err := s.fault(FaultAcked); err != nil {
			r.valid = false
			finishJobs(jobs, err)
			return true
		}
		r.pending = &in
		if touchesSessions(in.Changes) {
			// A session is read outside the player's line (a request
			// authenticates before it joins it): it must be in the store
			// before the client can use it. Other changes are applied by
			// the next round's write, or when the line stays empty.
			r.pending = nil
			if !r.commit(ctx, deadline, in) {
				finishJobs(jobs, nil)
				return false
			}
		}
	}
	// The events are in the log: the actions are done, and their changes
	// reach the store with the next round's write, or when the leader goes.
	finishJobs(jobs, nil)
	return true
}

// touchesSessions says whether changes create an account or open or close
// a session: what requests read outside a player's line.
func touchesSessions(cs []state.Change) bool {
	for _, c := range cs {
		if c.Create != nil || c.Session != nil || c.EndSession != "" {
			return true
		}
	}
	return false
}

// refuse answers a round whose store write failed. Nothing was recorded,
// and the refusals were decided on changes that will not happen: each
// action's failed event, with the store's reason, is recorded by its
// request (finish). The last round's changes, in the log, still have to
// reach the store: a commit that waits for it keeps the player's lock, and
// refuse says false.
func (r *round) refuse(jobs []*job, named *action, in state.Intent, err error) bool {
	s := r.s
	r.valid = false
	if errors.Is(err, state.ErrExists) {
		err = fmt.Errorf("%w: %w", ErrPlayerBusy, err)
	} else {
		// The write may have reached the store although it failed: undo
		// it, or leave it to settle, which drops it.
		s.running.Go(func() {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.store.Drop(dctx, r.user, in.EventID)
		})
		err = s.storeFailure(named, "prepare "+named.ev.Type, err)
	}
	for _, j := range jobs {
		j.err = err
	}
	finishJobs(jobs, nil)
	if r.pending == nil {
		return true
	}
	done := *r.pending
	r.pending = nil
	unlock := r.unlock
	r.unlock = nil
	s.running.Go(func() { s.keepCommitting(r.user, done, unlock) })
	return false
}

// load reads the player for a round, settling first what the player has
// pending, so that nothing is decided on a state the log has moved past.
func (r *round) load(ctx context.Context, a *action) error {
	s := r.s
	for tries := 0; ; tries++ {
		p, err := s.store.Player(ctx, r.user)
		switch {
		case errors.Is(err, state.ErrNotFound):
			in, perr := s.store.Pending(ctx, r.user)
			if errors.Is(perr, state.ErrNotFound) || tries > 0 {
				r.p, r.valid = running{}, true
				return nil
			}
			if perr != nil {
				return s.storeFailure(a, "read pending change of "+r.user, perr)
			}
			if err := s.settle(ctx, r.user, in); err != nil {
				return err
			}
			continue
		case err != nil:
			return s.storeFailure(a, "read player "+r.user, err)
		case p.Pending == "" || tries > 0:
			r.p, r.valid = running{Player: p, exists: true}, true
			return nil
		}
		in, err := s.store.Pending(ctx, r.user)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return s.storeFailure(a, "read pending change of "+r.user, err)
		}
		if err := s.settle(ctx, r.user, in); err != nil {
			return err
		}
	}
}

// commit applies an acknowledged intent, retrying while the store fails.
// Past the round's deadline it hands the commit, and the player's lock with
// it, to the background, and returns false: the changes are in the log,
// and the player's next actions wait until they are in the store too.
func (r *round) commit(ctx context.Context, deadline time.Time, in state.Intent) bool {
	s := r.s
	err := s.store.Commit(ctx, r.user, in)
	for pause := 10 * time.Millisecond; retryable(err) && time.Until(deadline) > pause; pause = min(2*pause, time.Second) {
		time.Sleep(pause)
		err = s.store.Commit(ctx, r.user, in)
	}
	switch {
	case err == nil || errors.Is(err, state.ErrNotFound): // ErrNotFound: settled by another server meanwhile
		return true
	case retryable(err):
		if s.storeWarn.allow(time.Now()) {
			s.log.Warn("state store unavailable: acknowledged changes wait to be applied", "user", r.user, "event_id", in.EventID, "err", err)
		}
		r.valid = false
		unlock := r.unlock
		r.unlock = nil
		s.running.Go(func() { s.keepCommitting(r.user, in, unlock) })
		return false
	default:
		s.log.Error("acknowledged changes cannot be applied: they stay pending and the player waits until they are settled by hand",
			"user", r.user, "event_id", in.EventID, "err", err)
		r.valid = false
		return true
	}
}

// Idle waits until no player's actions are being carried out, or ctx ends:
// then every acknowledged change is in the store (a leader applies its
// last round's changes before it goes). Changes whose events the log did
// not acknowledge may still be pending (Settle).
func (s *Service) Idle(ctx context.Context) error {
	for {
		s.lines.mu.Lock()
		n := len(s.lines.byUser)
		s.lines.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d players' actions: %w", n, ctx.Err())
		case <-time.After(200 * time.Microsecond):
		}
	}
}
