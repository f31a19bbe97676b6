package sqlitestore

import (
	"context"
	"sync"
)

// userLocks is an in-process lock per player. An entry lives only while
// someone holds or waits for it, so the map does not grow with the number
// of players ever seen.
type userLocks struct {
	mu sync.Mutex
	m  map[string]*userLock
}

type userLock struct {
	held chan struct{} // capacity 1: full while the lock is held
	refs int           // holder and waiters; guarded by userLocks.mu
}

func newUserLocks() *userLocks {
	return &userLocks{m: make(map[string]*userLock)}
}

// lock waits for user's lock or for ctx to end, whichever comes first.
func (l *userLocks) lock(ctx context.Context, user string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	e := l.m[user]
	if e == nil {
		e = &userLock{held: make(chan struct{}, 1)}
		l.m[user] = e
	}
	e.refs++
	l.mu.Unlock()

	select {
	case e.held <- struct{}{}:
	case <-ctx.Done():
		l.release(user, e)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.held
			l.release(user, e)
		})
	}, nil
}

func (l *userLocks) release(user string, e *userLock) {
	l.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(l.m, user)
	}
	l.mu.Unlock()
}
