package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// A lease is a lock on a name that its holder keeps by rewriting it.
//
// The lease is an object, written with a conditional PUT: If-None-Match: *
// creates it only when there is none, If-Match: <ETag> replaces only the
// version the writer saw (S3 has honoured both since 2024; so do MinIO
// and moto). Its body names the holder and its time to live. The holder
// renews it every third of that time; anyone may take it over once it
// was not renewed for the time to live, as the store's clock says (the
// object's Last-Modified against the Date of the same answer), so that
// no two machines' clocks are compared. The holder counts its own time
// from before each renewal was sent, and gives the lease up as lost
// once two thirds of the time to live passed without a renewal: a third
// of it is left for the writes it had started, before anyone may take
// the lease over.
//
// S3 cannot make a write depend on another object, so a lease is not a
// fence: a holder stalled for longer than the time to live (a paused
// process, a write stuck in the network) can still complete a write
// after another took the lease over. The margin makes that need a stall
// of a third of the time to live at the wrong moment.

// DefaultTTL is a lease's time to live unless the taker says otherwise.
const DefaultTTL = 30 * time.Second

// minTTL bounds the time to live from below: Last-Modified counts whole
// seconds.
const minTTL = 2 * time.Second

// leaseBody is what a lease object holds.
type leaseBody struct {
	Holder string `json:"holder"`
	TTLms  int64  `json:"ttl_ms"`
	// Renewed is the holder's clock when it wrote this version, for
	// people; takeovers go by the store's clock.
	Renewed time.Time `json:"renewed"`
	// Seq makes every version's body, and so its ETag, different.
	Seq int64 `json:"seq"`
}

// HeldError says a lease is held by another, and until when at least.
type HeldError struct {
	Location string // the lease object
	Holder   string
	Renewed  time.Time     // on the store's clock
	TTL      time.Duration // the holder's
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by %s (renewed %s ago; taken over if not renewed for %s)",
		e.Location, e.Holder, time.Since(e.Renewed).Round(time.Second), e.TTL)
}

// LostError says a lease was lost: another may hold it now.
type LostError struct {
	Location string
	Reason   string
}

func (e *LostError) Error() string { return fmt.Sprintf("lost %s: %s", e.Location, e.Reason) }

// Lease is a lease held: Lost is closed once it is lost, and Release
// gives it up.
type Lease struct {
	b      *Bucket
	name   string
	holder string
	ttl    time.Duration

	mu   sync.Mutex
	etag string
	seq  int64
	err  error

	lost chan struct{}
	stop chan struct{}
	done chan struct{}
}

// TryLease takes the lease on name, with a time to live of ttl (default
// DefaultTTL), or fails at once with a *HeldError when another holds it.
// The lease is kept, whatever becomes of ctx, until Release.
func (b *Bucket) TryLease(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < minTTL {
		return nil, fmt.Errorf("lease %s: a time to live of %s is below %s", b.where(name), ttl, minTTL)
	}
	l := &Lease{b: b, name: name, holder: holderName(), ttl: ttl,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	for attempt := 0; ; attempt++ {
		sent := time.Now()
		etag, err := l.put(ctx, func(o *minio.PutObjectOptions) { o.SetMatchETagExcept("*") })
		if err == nil {
			l.etag = etag
			go l.renew(sent)
			return l, nil
		}
		if !preconditionFailed(err) {
			return nil, b.wrap("take lease", name, err)
		}
		cur, err := b.readLease(ctx, name)
		if notFound(err) && attempt < 3 {
			continue // released meanwhile
		}
		if err != nil {
			return nil, b.wrap("take lease", name, err)
		}
		if !cur.expired() {
			return nil, cur.held(b.where(name))
		}
		sent = time.Now()
		etag, err = l.put(ctx, func(o *minio.PutObjectOptions) { o.SetMatchETag(cur.etag) })
		switch {
		case err == nil:
			l.etag = etag
			go l.renew(sent)
			return l, nil
		case preconditionFailed(err) || notFound(err):
			// Another took it over first.
			if now, rerr := b.readLease(ctx, name); rerr == nil {
				cur = now
			}
			return nil, cur.held(b.where(name))
		default:
			return nil, b.wrap("take lease", name, err)
		}
	}
}

// holderName says who holds a lease, for people: host, process and a
// random tag (two leases of one process differ).
func holderName() string {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s pid %d (%s)", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// put writes the next version of the lease, under the condition set by
// cond, and returns its ETag.
func (l *Lease) put(ctx context.Context, cond func(*minio.PutObjectOptions)) (string, error) {
	l.mu.Lock()
	l.seq++
	body := leaseBody{Holder: l.holder, TTLms: l.ttl.Milliseconds(), Renewed: time.Now().UTC(), Seq: l.seq}
	l.mu.Unlock()
	b, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	opts := minio.PutObjectOptions{ContentType: "application/json"}
	cond(&opts)
	// One PUT, never multipart: the condition holds for one request.
	info, err := l.b.core.PutObject(ctx, l.b.bucket, l.b.key(l.name), bytes.NewReader(b), int64(len(b)), "", "", opts)
	if err != nil {
		return "", err
	}
	return info.ETag, nil
}

// current is a lease as read from the store.
type current struct {
	leaseBody
	etag       string
	modified   time.Time // the store's clock, whole seconds
	serverTime time.Time // the store's clock when it answered
}

func (b *Bucket) readLease(ctx context.Context, name string) (*current, error) {
	rc, info, h, err := b.core.GetObject(ctx, b.bucket, b.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, err
	}
	c := &current{etag: info.ETag, modified: info.LastModified}
	if json.Unmarshal(data, &c.leaseBody) != nil || c.TTLms <= 0 {
		// Not a lease questlog wrote: held for the default time.
		c.leaseBody = leaseBody{Holder: "an unknown holder", TTLms: DefaultTTL.Milliseconds()}
	}
	c.serverTime = time.Now()
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		c.serverTime = d
	}
	return c, nil
}

// expired says whether the lease went unrenewed for its time to live,
// on the store's clock; Last-Modified and Date count whole seconds, so
// a second more is waited.
func (c *current) expired() bool {
	return c.serverTime.Sub(c.modified) > time.Duration(c.TTLms)*time.Millisecond+time.Second
}

func (c *current) held(location string) *HeldError {
	return &HeldError{Location: location, Holder: c.Holder, Renewed: time.Now().Add(-c.serverTime.Sub(c.modified)),
		TTL: time.Duration(c.TTLms) * time.Millisecond}
}

// Lost is closed once the lease is lost: it could not be renewed in time,
// or another took it over. The holder must stop writing.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err is why the lease was lost (a *LostError), nil while it is held.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// TTL is the lease's time to live.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Release stops renewing the lease and deletes it, unless it was lost
// (then another may hold it). A lease whose deletion fails lapses after
// its time to live.
func (l *Lease) Release() error {
	select {
	case <-l.stop:
		return nil // released already
	default:
	}
	close(l.stop)
	<-l.done
	if l.Err() != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cur, err := l.b.readLease(ctx, l.name)
	switch {
	case notFound(err):
		return nil
	case err != nil:
		return l.b.wrap("release lease", l.name, err)
	case cur.Holder != l.holder:
		return nil // taken over: not ours to delete
	}
	return l.b.Remove(ctx, l.name)
}

// renew rewrites the lease every third of its time to live until
// released, and declares it lost when it could not for two thirds of it.
// last is when the version held was sent.
func (l *Lease) renew(last time.Time) {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(time.Until(last.Add(l.ttl / 3))):
		}
		deadline := last.Add(l.ttl * 2 / 3)
		var err error
		for {
			sent := time.Now()
			if err = l.renewOnce(deadline); err == nil {
				last = sent
				break
			}
			var lost *LostError
			if errors.As(err, &lost) {
				l.lose(lost)
				return
			}
			wait := min(time.Second, time.Until(deadline))
			if wait <= 0 {
				l.lose(&LostError{Location: l.b.where(l.name), Reason: fmt.Sprintf("not renewed for %s: %v", l.ttl*2/3, err)})
				return
			}
			select {
			case <-l.stop:
				return
			case <-time.After(wait):
			}
		}
	}
}

// renewOnce writes the next version of the lease over the one held. A
// refusal is a *LostError, unless the refused version is our own (an
// answer lost on the way back after the store took the write).
func (l *Lease) renewOnce(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	l.mu.Lock()
	held := l.etag
	l.mu.Unlock()
	etag, err := l.put(ctx, func(o *minio.PutObjectOptions) { o.SetMatchETag(held) })
	if err == nil {
		l.mu.Lock()
		l.etag = etag
		l.mu.Unlock()
		return nil
	}
	if !preconditionFailed(err) && !notFound(err) {
		return err
	}
	cur, rerr := l.b.readLease(ctx, l.name)
	switch {
	case rerr == nil && cur.Holder == l.holder:
		l.mu.Lock()
		l.etag = cur.etag
		l.mu.Unlock()
		return errors.New("renewed with an answer lost: again with its ETag")
	case rerr == nil:
		return &LostError{Location: l.b.where(l.name), Reason: "taken over by " + cur.Holder}
	case notFound(rerr):
		return &LostError{Location: l.b.where(l.name), Reason: "deleted by another"}
	}
	return rerr
}

func (l *Lease) lose(err *LostError) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	close(l.lost)
}
