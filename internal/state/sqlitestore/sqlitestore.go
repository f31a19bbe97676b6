// Package sqlitestore keeps the game's state in one embedded SQLite file
// (modernc.org/sqlite, no cgo): the default state.Store of a single questlog
// process.
//
// Writes go through one connection in IMMEDIATE transactions, so writers
// queue in Go instead of failing with SQLITE_BUSY, and the players' changes
// that queue together share one transaction (group commit); reads use a pool of
// read-only connections that never block the writer (WAL mode). A background
// connection copies the WAL into the database file every second, and the
// writer then finishes that checkpoint so the WAL starts over instead of
// growing for as long as writes never pause (see catchUp). A change is
// durable when Apply returns: it survives the process being killed
// (synchronous=NORMAL), not necessarily a power loss. Player locks are
// in-process, so one file is served by one process at a time, which Open
// enforces with a lock on PATH.lock; share state between processes with
// Redis instead.
//
// The package knows nothing of the game's rules, HTTP or Kafka.
package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/questlog/questlog/internal/state"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// purgeEvery is how often CreateSession also deletes expired sessions.
const purgeEvery = time.Minute

// Store is a state.Store in one SQLite file. It is safe for concurrent use.
type Store struct {
	path  string
	lock  *os.File // held exclusively while open: one process per file
	write *sql.DB  // exactly one connection: writers queue in Go
	read  *sql.DB  // read-only pool
	locks *userLocks

	cache *players // what this process read or wrote of the players

	ckpt     *sql.DB // the checkpointer's own connection
	stopCkpt chan struct{}
	ckptDone chan struct{}
	// caughtUp tells the committer that a background checkpoint ended,
	// so that it finishes it before its next transaction (catchUp).
	caughtUp chan struct{}
	// ckpts counts the background checkpoints that succeeded, and
	// emptied the catch-ups after which the WAL held nothing the database
	// file lacked (so that the next write starts it over).
	ckpts   atomic.Int64
	emptied atomic.Int64

	// applies hands changes to the committer goroutine, which commits
	// the changes waiting together in one transaction (group commit).
	applies     chan *pendingApply
	stopCommits chan struct{}
	commitsDone chan struct{}

	lastPurge atomic.Int64 // unix nanoseconds of the last expired-session purge

	// sessions caches the sessions this process created (token hash ->
	// cachedSession), so a request's session lookup skips SQLite. It is
	// exact because one process owns the file: CreateSession adds,
	// DeleteSession removes, and an entry past its expiry is never
	// answered from. Sessions made before Open are read from the file.
	sessions  sync.Map
	nSessions atomic.Int64

	// intents mirrors the intents table (user -> state.Intent): exact,
	// because one process owns the file and every change to the table goes
	// through the committer, which updates it after each commit.
	intents sync.Map

	createAccount *sql.Stmt
	prepareIntent *sql.Stmt
	removeIntent  *sql.Stmt
	player        *sql.Stmt
	accountExists *sql.Stmt
	updateAccount *sql.Stmt
	clearCart     *sql.Stmt
	add           [2]*sql.Stmt // by table: inventory, cart
	take          [2]*sql.Stmt
	takeLast      [2]*sql.Stmt
	createSession *sql.Stmt
	session       *sql.Stmt
	deleteSession *sql.Stmt
	purgeSessions *sql.Stmt
}

var _ state.Store = (*Store)(nil)

// Open opens the SQLite file at path, creating it (and its directory) if
// needed, and creates or migrates its schema.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, checkpointEvery)
}

// open is Open with the checkpointer's interval, which tests shorten.
func open(ctx context.Context, path string, every time.Duration) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite state: empty path")
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite state %q: the path must be a plain file name (no '?', '#' or file: URI)", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}

	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("open sqlite state: %w", err)
	}

	// busy_timeout only matters when another process holds the file: in
	// this one, writers queue for the single write connection.
	params := url.Values{"_pragma": {"busy_timeout(10000)", "foreign_keys(1)"}}
	writeParams := url.Values{
		// journal_size_limit: the first commit after the WAL starts over
		// truncates a WAL file longer than this; catchUp keeps the WAL
		// short, so that is rare and cheap.
		// wal_autocheckpoint(0): a commit never runs a checkpoint (and its
		// fsyncs) inline, which stalled every queued writer behind it;
		// the checkpointer goroutine does that work off the request path.
		"_pragma": append([]string{"journal_mode(WAL)", "synchronous(NORMAL)", "journal_size_limit(67108864)", "wal_autocheckpoint(0)"}, params["_pragma"]...),
		"_txlock": {"immediate"},
	}
	write, err := sql.Open("sqlite", path+"?"+writeParams.Encode())
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	s := &Store{path: path, lock: lock, write: write, locks: newUserLocks(), cache: newPlayers(maxCachedPlayers)}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	ckpt, err := sql.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	ckpt.SetMaxOpenConns(1)
	s.ckpt = ckpt
	s.stopCkpt = make(chan struct{})
	s.ckptDone = make(chan struct{})
	s.caughtUp = make(chan struct{}, 1)
	go s.checkpoints(every)

	// Readers open after the schema exists and WAL mode is set in the file.
	params.Add("_pragma", "query_only(1)")
	read, err := sql.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	s.read = read

	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	if err := s.loadIntents(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	s.applies = make(chan *pendingApply) // unbuffered: a change handed over is always answered
	s.stopCommits = make(chan struct{})
	s.commitsDone = make(chan struct{})
	go s.commits()
	if err := s.purge(ctx, time.Now()); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	return s, nil
}

// migrations[i] brings the schema from version i to version i+1. Append
// only: a released migration never changes.
var migrations = []string{
	`CREATE TABLE accounts (
		user          TEXT    NOT NULL PRIMARY KEY,
		password_hash BLOB    NOT NULL,
		gold          INTEGER NOT NULL CHECK (gold >= 0),
		guild         TEXT    NOT NULL DEFAULT '',
		created_at    TEXT    NOT NULL -- RFC 3339, UTC, nanoseconds
	) WITHOUT ROWID, STRICT;
	CREATE TABLE inventory (
		user      TEXT    NOT NULL REFERENCES accounts (user) ON DELETE CASCADE,
		item_type TEXT    NOT NULL,
		quality   TEXT    NOT NULL,
		quantity  INTEGER NOT NULL CHECK (quantity > 0),
		PRIMARY KEY (user, item_type, quality)
	) WITHOUT ROWID, STRICT;
	CREATE TABLE cart (
		user      TEXT    NOT NULL REFERENCES accounts (user) ON DELETE CASCADE,
		item_type TEXT    NOT NULL,
		quality   TEXT    NOT NULL,
		quantity  INTEGER NOT NULL CHECK (quantity > 0),
		PRIMARY KEY (user, item_type, quality)
	) WITHOUT ROWID, STRICT;
	CREATE TABLE sessions (
		token_hash TEXT    NOT NULL PRIMARY KEY,
		user       TEXT    NOT NULL REFERENCES accounts (user) ON DELETE CASCADE,
		expires_at INTEGER NOT NULL -- unix nanoseconds
	) WITHOUT ROWID, STRICT;
	CREATE INDEX sessions_by_expiry ON sessions (expires_at);
	CREATE INDEX sessions_by_user ON sessions (user);`,
	// Intents: a change decided and being recorded in the event log, kept
	// until it is committed or dropped (state.Intent). No foreign key: a
	// signup's intent comes before its account.
	`CREATE TABLE intents (
		user         TEXT    NOT NULL PRIMARY KEY,
		event_id     TEXT    NOT NULL,
		partition    INTEGER NOT NULL,
		after_offset INTEGER NOT NULL,
		created_at   INTEGER NOT NULL, -- unix nanoseconds
		change       BLOB    NOT NULL  -- the []state.Change as JSON
	) WITHOUT ROWID, STRICT;`,
}

// SchemaVersion is the schema version this package writes.
var SchemaVersion = len(migrations)

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.write.BeginTx(ctx, nil) // IMMEDIATE: one migrator at a time
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT`); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	var version int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate schema: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate schema: read version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this questlog knows (%d): upgrade questlog", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	if version < len(migrations) {
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
			return fmt.Errorf("migrate schema: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}

// statement is a statement to prepare, on db, into dst.
type statement struct {
	dst   **sql.Stmt
	db    *sql.DB
	query string
}

func (s *Store) prepare(ctx context.Context) error {
	tables := [2]string{"inventory", "cart"}
	stmts := []statement{
		{&s.createAccount, s.write, `INSERT INTO accounts (user, password_hash, gold, guild, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (user) DO NOTHING`},
		// One statement reads a consistent snapshot of the whole player.
		{&s.player, s.read, `
			SELECT 0, '', '', gold, password_hash, guild, created_at FROM accounts WHERE user = ?1
			UNION ALL
			SELECT 1, item_type, quality, quantity, NULL, NULL, NULL FROM inventory WHERE user = ?1
			UNION ALL
			SELECT 2, item_type, quality, quantity, NULL, NULL, NULL FROM cart WHERE user = ?1
			ORDER BY 1, 2, 3`},
		{&s.accountExists, s.write, `SELECT EXISTS (SELECT 1 FROM accounts WHERE user = ?)`},
		{&s.prepareIntent, s.write, `INSERT INTO intents (user, event_id, partition, after_offset, created_at, change)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user) DO NOTHING`},
		{&s.removeIntent, s.write, `DELETE FROM intents WHERE user = ? AND event_id = ?`},
		{&s.updateAccount, s.write, `UPDATE accounts
			SET gold = gold + ?2, guild = CASE WHEN ?3 THEN ?4 ELSE guild END
			WHERE user = ?1 AND gold + ?2 >= 0`},
		{&s.clearCart, s.write, `DELETE FROM cart WHERE user = ?`},
		{&s.createSession, s.write, `INSERT INTO sessions (token_hash, user, expires_at)
			SELECT ?1, ?2, ?3 FROM accounts WHERE user = ?2
			ON CONFLICT (token_hash) DO UPDATE SET user = excluded.user, expires_at = excluded.expires_at
			WHERE sessions.expires_at <= ?4 OR sessions.user = excluded.user`},
		{&s.session, s.read, `SELECT user, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?`},
		{&s.deleteSession, s.write, `DELETE FROM sessions WHERE token_hash = ?`},
		{&s.purgeSessions, s.write, `DELETE FROM sessions WHERE expires_at <= ?`},
	}
	for i, table := range tables {
		stmts = append(stmts,
			statement{&s.add[i], s.write, `INSERT INTO ` + table + ` (user, item_type, quality, quantity) VALUES (?1, ?2, ?3, ?4)
				ON CONFLICT (user, item_type, quality) DO UPDATE SET quantity = quantity + excluded.quantity`},
			statement{&s.take[i], s.write, `UPDATE ` + table + ` SET quantity = quantity - ?4
				WHERE user = ?1 AND item_type = ?2 AND quality = ?3 AND quantity > ?4`},
			statement{&s.takeLast[i], s.write, `DELETE FROM ` + table + `
				WHERE user = ?1 AND item_type = ?2 AND quality = ?3 AND quantity = ?4`},
		)
	}
	for _, st := range stmts {
		p, err := st.db.PrepareContext(ctx, st.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", strings.Join(strings.Fields(st.query), " "), err)
		}
		*st.dst = p
	}
	return nil
}

// checkpointEvery is how often the checkpointer copies the WAL into the
// database file.
const checkpointEvery = time.Second

// checkpoints runs PASSIVE checkpoints, which never block readers or the
// writer, until Close, and after each one asks the committer to catch up.
func (s *Store) checkpoints(every time.Duration) {
	defer close(s.ckptDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if s.checkpoint(ctx, s.ckpt) == nil {
				s.ckpts.Add(1)
			}
			cancel()
			select {
			case s.caughtUp <- struct{}{}:
			default: // the committer has not caught up with the last one yet
			}
		}
	}
}

// checkpoint runs a PASSIVE checkpoint on db.
func (s *Store) checkpoint(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return fmt.Errorf("checkpoint %s: %w", s.path, err)
	}
	return nil
}

// catchUp finishes the background checkpoint on the write connection: it
// copies only what was committed while that one ran, a few milliseconds'
// work. The WAL then holds nothing the database file lacks, so the next
// write transaction starts the WAL over from its beginning (when no reader
// still reads from it). Without this, under writes that never pause, the
// writer never began a transaction at a moment the WAL was fully copied,
// so the WAL never started over: it grew by every change (820 MB after
// 40 s of 3,000 changes per second), and the commit that finally started
// it over truncated the file to journal_size_limit inline while every
// queued change waited (ftruncate of a 300 MB WAL to 64 MB: ~95 ms).
func (s *Store) catchUp() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The checkpoint's row: busy, frames in the WAL, frames copied.
	var busy, frames, copied int64
	err := s.write.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	if err == nil && busy == 0 && frames == copied {
		s.emptied.Add(1)
	}
}

// Close closes the file. It does not wait for held locks.
func (s *Store) Close() error {
	var errs []error
	if s.applies != nil {
		close(s.stopCommits)
		<-s.commitsDone
	}
	if s.ckpt != nil {
		close(s.stopCkpt)
		<-s.ckptDone
		// A last full checkpoint leaves a small WAL for the next Open.
		_, _ = s.ckpt.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		errs = append(errs, s.ckpt.Close())
	}
	if s.read != nil {
		errs = append(errs, s.read.Close()) // closes its statements too
	}
	errs = append(errs, s.write.Close(), s.lock.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite state %s: %w", s.path, err)
	}
	return nil
}

// Ping checks that both the writer and the readers answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite state %s: %w", s.path, err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite state %s: %w", s.path, err)
	}
	return nil
}

// Lock takes the player's in-process lock, waiting until it is free or ctx
// ends. It does not check that the player exists.
func (s *Store) Lock(ctx context.Context, user string) (func(), error) {
	unlock, err := s.locks.lock(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("lock player %q: %w", user, err)
	}
	return unlock, nil
}

// CreateAccount stores a new account; a zero CreatedAt becomes now.
func (s *Store) CreateAccount(ctx context.Context, a state.Account) error {
	if err := validAccount(a); err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	ph := a.PasswordHash
	if ph == nil {
		ph = []byte{} // NOT NULL
	}
	res, err := s.createAccount.ExecContext(ctx, a.User, ph, a.Gold, a.Guild,
		a.CreatedAt.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("create account %q: %w", a.User, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create account %q: %w", a.User, err)
	} else if n == 0 {
		return fmt.Errorf("create account %q: %w", a.User, state.ErrExists)
	}
	return nil
}

// Player reads the account with its inventory and cart in one snapshot,
// from the cache when this process read or changed the player before.
func (s *Store) Player(ctx context.Context, user string) (state.Player, error) {
	p, ok, ticket := s.cache.get(user)
	if !ok {
		var err error
		if p, err = s.readPlayer(ctx, user); err != nil {
			return p, err
		}
		s.cache.put(user, p, ticket)
	}
	if v, pending := s.intents.Load(user); pending {
		p.Pending = v.(state.Intent).EventID
	}
	return p, nil
}

// readPlayer reads the player from the file.
func (s *Store) readPlayer(ctx context.Context, user string) (state.Player, error) {
	rows, err := s.player.QueryContext(ctx, user)
	if err != nil {
		return state.Player{}, fmt.Errorf("read player %q: %w", user, err)
	}
	defer rows.Close()
	p := state.Player{Inventory: []state.Stack{}, Cart: []state.Stack{}}
	found := false
	for rows.Next() {
		var (
			kind      int
			st        state.Stack
			gold      int64
			ph        []byte
			guild     sql.NullString
			createdAt sql.NullString
		)
		if err := rows.Scan(&kind, &st.Type, &st.Quality, &gold, &ph, &guild, &createdAt); err != nil {
			return state.Player{}, fmt.Errorf("read player %q: %w", user, err)
		}
		switch kind {
		case 0:
			found = true
			t, err := time.Parse(time.RFC3339Nano, createdAt.String)
			if err != nil {
				return state.Player{}, fmt.Errorf("read player %q: created_at: %w", user, err)
			}
			p.Account = state.Account{User: user, PasswordHash: ph, Gold: gold, Guild: guild.String, CreatedAt: t}
		case 1:
			st.Quantity = gold
			p.Inventory = append(p.Inventory, st)
		case 2:
			st.Quantity = gold
			p.Cart = append(p.Cart, st)
		}
	}
	if err := rows.Err(); err != nil {
		return state.Player{}, fmt.Errorf("read player %q: %w", user, err)
	}
	if !found {
		return state.Player{}, fmt.Errorf("read player %q: %w", user, state.ErrNotFound)
	}
	return p, nil
}

// Apply applies c atomically, without an intent. Changes that wait for the
// writer together are committed in one IMMEDIATE transaction, each in a
// savepoint of its own, so one commit (and its WAL write) serves them all
// and a change that fails is rolled back alone. ctx bounds the wait for the
// writer; once the writer has taken the change, it is applied and Apply
// reports the outcome.
func (s *Store) Apply(ctx context.Context, user string, c state.Change) error {
	if err := s.write1(ctx, &pendingApply{op: opApply, user: user, cs: []state.Change{c}}); err != nil {
		return fmt.Errorf("apply change to %q: %w", user, err)
	}
	return nil
}

// Prepare stores the player's pending intent (state.Store).
func (s *Store) Prepare(ctx context.Context, user string, in state.Intent) error {
	if in.EventID == "" {
		return fmt.Errorf("prepare intent for %q: empty event ID", user)
	}
	if _, pending := s.intents.Load(user); pending {
		return fmt.Errorf("prepare intent %s for %q: %w", in.EventID, user, state.ErrExists)
	}
	if err := s.write1(ctx, &pendingApply{op: opPrepare, user: user, cs: in.Changes, in: in}); err != nil {
		return fmt.Errorf("prepare intent %s for %q: %w", in.EventID, user, err)
	}
	return nil
}

// Pending returns the player's pending intent, or ErrNotFound.
func (s *Store) Pending(_ context.Context, user string) (state.Intent, error) {
	if v, ok := s.intents.Load(user); ok {
		return v.(state.Intent), nil
	}
	return state.Intent{}, fmt.Errorf("pending intent of %q: %w", user, state.ErrNotFound)
}

// Commit applies the pending intent's change and removes it (state.Store).
func (s *Store) Commit(ctx context.Context, user string, in state.Intent) error {
	if v, ok := s.intents.Load(user); !ok || v.(state.Intent).EventID != in.EventID {
		return fmt.Errorf("commit intent %s of %q: %w", in.EventID, user, state.ErrNotFound)
	}
	if err := s.write1(ctx, &pendingApply{op: opCommit, user: user, cs: in.Changes, in: in}); err != nil {
		return fmt.Errorf("commit intent %s of %q: %w", in.EventID, user, err)
	}
	return nil
}

// Advance commits done and stores next, in one transaction (state.Store).
func (s *Store) Advance(ctx context.Context, user string, done, next state.Intent) error {
	if v, ok := s.intents.Load(user); !ok || v.(state.Intent).EventID != done.EventID {
		return fmt.Errorf("commit intent %s of %q: %w", done.EventID, user, state.ErrNotFound)
	}
	if next.EventID == "" {
		return fmt.Errorf("prepare intent for %q: empty event ID", user)
	}
	if err := s.write1(ctx, &pendingApply{op: opCommit, user: user, cs: done.Changes, in: done, next: &next}); err != nil {
		return fmt.Errorf("commit intent %s and prepare %s of %q: %w", done.EventID, next.EventID, user, err)
	}
	return nil
}

// Drop removes the pending intent without applying it (state.Store).
func (s *Store) Drop(ctx context.Context, user, eventID string) error {
	if v, ok := s.intents.Load(user); !ok || v.(state.Intent).EventID != eventID {
		return nil
	}
	if err := s.write1(ctx, &pendingApply{op: opDrop, user: user, in: state.Intent{EventID: eventID}}); err != nil {
		return fmt.Errorf("drop intent %s of %q: %w", eventID, user, err)
	}
	return nil
}

// PendingUsers lists the players with a pending intent.
func (s *Store) PendingUsers(context.Context) ([]string, error) {
	var users []string
	s.intents.Range(func(k, _ any) bool {
		users = append(users, k.(string))
		return true
	})
	return users, nil
}

// loadIntents fills the mirror of the intents table.
func (s *Store) loadIntents(ctx context.Context) error {
	rows, err := s.write.QueryContext(ctx, `SELECT user, event_id, partition, after_offset, created_at, change FROM intents`)
	if err != nil {
		return fmt.Errorf("read intents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			user    string
			in      state.Intent
			created int64
			change  []byte
		)
		if err := rows.Scan(&user, &in.EventID, &in.Partition, &in.After, &created, &change); err != nil {
			return fmt.Errorf("read intents: %w", err)
		}
		if err := json.Unmarshal(change, &in.Changes); err != nil {
			return fmt.Errorf("read intent %s of %q: %w", in.EventID, user, err)
		}
		in.Created = time.Unix(0, created).UTC()
		s.intents.Store(user, in)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read intents: %w", err)
	}
	return nil
}

// write1 validates p, hands it to the committer and waits for its outcome.
func (s *Store) write1(ctx context.Context, p *pendingApply) error {
	if p.user == "" {
		return errors.New("empty user name")
	}
	if p.op != opDrop {
		if len(p.cs) == 0 {
			return errors.New("no change")
		}
		p.deltas = make([][2][]state.Stack, len(p.cs))
		now := time.Now()
		for i, c := range p.cs {
			if err := validChange(p.user, c, now); err != nil {
				return err
			}
			var err error
			if p.deltas[i][0], err = state.SumDeltas(c.Inventory); err != nil {
				return fmt.Errorf("inventory: %w", err)
			}
			if p.deltas[i][1], err = state.SumDeltas(c.Cart); err != nil {
				return fmt.Errorf("cart: %w", err)
			}
		}
	}
	if p.op == opPrepare {
		changes, err := json.Marshal(p.cs)
		if err != nil {
			return fmt.Errorf("encode changes: %w", err)
		}
		p.encoded = changes
	}
	if p.next != nil {
		now := time.Now()
		for _, c := range p.next.Changes {
			if err := validChange(p.user, c, now); err != nil {
				return err
			}
		}
		changes, err := json.Marshal(p.next.Changes)
		if err != nil {
			return fmt.Errorf("encode changes: %w", err)
		}
		p.encoded = changes
	}
	if p.op != opPrepare {
		for _, c := range p.cs {
			if c.EndSession != "" {
				// Forget the session before the file does: a lookup that
				// misses the cache reads the file, right either way.
				s.forgetSession(c.EndSession)
			}
		}
	}
	p.done = make(chan error, 1)
	select {
	case s.applies <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopCommits:
		return errClosed
	}
	return <-p.done
}

// errClosed is returned by writes after Close.
var errClosed = errors.New("sqlite state is closed")

// op is what a pendingApply asks of the committer.
type op uint8

const (
	opApply   op = iota // apply c
	opPrepare           // store the intent in
	opCommit            // apply c and remove the intent in.EventID
	opDrop              // remove the intent in.EventID
)

// pendingApply is one write waiting for the committer.
type pendingApply struct {
	op      op
	user    string
	cs      []state.Change // applied in order (opApply, opCommit)
	in      state.Intent
	next    *state.Intent      // opCommit: stored as the pending intent once in is applied
	encoded []byte             // opPrepare: cs as JSON; with next, next's changes
	deltas  [][2][]state.Stack // of each change, as state.SumDeltas makes them
	done    chan error
}

// groupMax bounds how many changes share one transaction.
const groupMax = 128

// commits is the committer: it takes the changes waiting at that moment
// and commits them together, until Close.
func (s *Store) commits() {
	defer close(s.commitsDone)
	group := make([]*pendingApply, 0, groupMax)
	errs := make([]error, groupMax)
	for {
		select {
		case <-s.stopCommits:
			return
		case <-s.caughtUp:
			s.catchUp()
			continue
		case p := <-s.applies:
			group = append(group[:0], p)
		}
		// Catch up before this group when the writer never idles.
		select {
		case <-s.caughtUp:
			s.catchUp()
		default:
		}
	fill:
		for len(group) < groupMax {
			select {
			case p := <-s.applies:
				group = append(group, p)
			default:
				break fill
			}
		}
		clear(errs)
		for _, p := range group {
			s.cache.begin(p.user)
		}
		s.commitGroup(group, errs[:len(group)])
		for i, p := range group {
			s.committed(p, errs[i])
			p.done <- errs[i]
		}
		clear(group)
	}
}

// committed brings the caches and the intents' mirror up to date with the
// outcome of p.
func (s *Store) committed(p *pendingApply, err error) {
	changed := p.op == opApply || p.op == opCommit
	if changed {
		s.cache.end(p.user, err, p.cs, p.deltas)
	} else {
		s.cache.end(p.user, nil, nil, nil)
	}
	if err != nil {
		if errors.Is(err, state.ErrConflict) || errors.Is(err, state.ErrNotFound) || errors.Is(err, state.ErrExists) {
			return // refused: nothing reached the file
		}
		// The outcome is unsure (a failed COMMIT may still have reached
		// the file): read the intent back so the mirror says what the file
		// says. If that fails too, keep the mirror's view of a pending
		// intent, which only makes the game settle it again.
		if p.op != opApply {
			s.reloadIntent(p.user)
		}
		return
	}
	switch {
	case p.op == opPrepare:
		s.intents.Store(p.user, p.in)
	case p.next != nil:
		s.intents.Store(p.user, *p.next)
	case p.op == opCommit, p.op == opDrop:
		s.intents.Delete(p.user)
	}
	if changed {
		for _, c := range p.cs {
			if c.Session != nil {
				s.rememberSession(*c.Session)
			}
		}
	}
}

// reloadIntent reads user's intent back from the file into the mirror.
func (s *Store) reloadIntent(user string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var (
		in      state.Intent
		created int64
		change  []byte
	)
	err := s.write.QueryRowContext(ctx, `SELECT event_id, partition, after_offset, created_at, change FROM intents WHERE user = ?`, user).
		Scan(&in.EventID, &in.Partition, &in.After, &created, &change)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		s.intents.Delete(user)
	case err == nil && json.Unmarshal(change, &in.Changes) == nil:
		in.Created = time.Unix(0, created).UTC()
		s.intents.Store(user, in)
	}
}

// commitGroup applies group in one transaction and sets errs[i] to the
// outcome of group[i]. Statements run without the callers' contexts: a
// caller gone after handing its change over must not fail the others'.
func (s *Store) commitGroup(group []*pendingApply, errs []error) {
	ctx := context.Background()
	fail := func(err error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	defer tx.Rollback() // after Commit, a no-op
	if len(group) == 1 {
		if errs[0] = s.do(ctx, tx, group[0]); errs[0] != nil {
			return
		}
	} else {
		applied := 0
		for i, p := range group {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT change"); err != nil {
				fail(fmt.Errorf("savepoint: %w", err))
				return
			}
			if errs[i] = s.do(ctx, tx, p); errs[i] != nil {
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO change"); err != nil {
					fail(fmt.Errorf("roll back to savepoint: %w", err))
					return
				}
			} else {
				applied++
			}
			if _, err := tx.ExecContext(ctx, "RELEASE change"); err != nil {
				fail(fmt.Errorf("release savepoint: %w", err))
				return
			}
		}
		if applied == 0 {
			return
		}
	}
	if err := tx.Commit(); err != nil {
		// A COMMIT that failed (SQLITE_FULL, SQLITE_IOERR, ...) may leave
		// the transaction open on the connection, and every later BEGIN
		// would fail: roll it back explicitly, as SQLite advises (an error
		// when it was rolled back already is harmless).
		_, _ = s.write.ExecContext(ctx, "ROLLBACK")
		fail(fmt.Errorf("commit: %w", err))
	}
}

// do carries out one write in tx.
func (s *Store) do(ctx context.Context, tx *sql.Tx, p *pendingApply) error {
	switch p.op {
	case opPrepare:
		n, err := rowsAffected(tx.StmtContext(ctx, s.prepareIntent).ExecContext(ctx,
			p.user, p.in.EventID, p.in.Partition, p.in.After, p.in.Created.UnixNano(), p.encoded))
		if err != nil {
			return fmt.Errorf("store intent: %w", err)
		}
		if n == 0 {
			return state.ErrExists
		}
		return nil
	case opCommit, opDrop:
		n, err := rowsAffected(tx.StmtContext(ctx, s.removeIntent).ExecContext(ctx, p.user, p.in.EventID))
		if err != nil {
			return fmt.Errorf("remove intent: %w", err)
		}
		if n == 0 {
			if p.op == opDrop {
				return nil
			}
			return state.ErrNotFound
		}
		if p.op == opDrop {
			return nil
		}
	}
	for i, c := range p.cs {
		if err := s.apply(ctx, tx, p.user, c, p.deltas[i]); err != nil {
			return err
		}
	}
	if n := p.next; n != nil {
		if _, err := tx.StmtContext(ctx, s.prepareIntent).ExecContext(ctx,
			p.user, n.EventID, n.Partition, n.After, n.Created.UnixNano(), p.encoded); err != nil {
			return fmt.Errorf("store intent: %w", err)
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, tx *sql.Tx, user string, c state.Change, deltas [2][]state.Stack) error {
	if a := c.Create; a != nil {
		ph := a.PasswordHash
		if ph == nil {
			ph = []byte{} // NOT NULL
		}
		n, err := rowsAffected(tx.StmtContext(ctx, s.createAccount).ExecContext(ctx, a.User, ph, a.Gold, a.Guild,
			a.CreatedAt.UTC().Format(time.RFC3339Nano)))
		if err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		if n == 0 {
			return state.ErrExists
		}
	}
	guild := ""
	if c.Guild != nil {
		guild = *c.Guild
	}
	// The account row is always touched: it proves the player exists.
	n, err := rowsAffected(tx.StmtContext(ctx, s.updateAccount).ExecContext(ctx, user, c.GoldDelta, c.Guild != nil, guild))
	if err != nil {
		return fmt.Errorf("update account: %w", err)
	}
	if n == 0 {
		var exists bool
		if err := tx.StmtContext(ctx, s.accountExists).QueryRowContext(ctx, user).Scan(&exists); err != nil {
			return fmt.Errorf("read account: %w", err)
		}
		if !exists {
			return state.ErrNotFound
		}
		return fmt.Errorf("gold %+d: %w", c.GoldDelta, state.ErrConflict)
	}
	if c.ClearCart {
		if _, err := tx.StmtContext(ctx, s.clearCart).ExecContext(ctx, user); err != nil {
			return fmt.Errorf("clear cart: %w", err)
		}
	}
	for i, table := range [2]string{"inventory", "cart"} {
		for _, d := range deltas[i] {
			if err := s.applyStack(ctx, tx, i, user, d); err != nil {
				return fmt.Errorf("%s %s/%s %+d: %w", table, d.Type, d.Quality, d.Quantity, err)
			}
		}
	}
	if sess := c.Session; sess != nil {
		now := time.Now()
		n, err := rowsAffected(tx.StmtContext(ctx, s.createSession).ExecContext(ctx, sess.TokenHash, sess.User, sess.ExpiresAt.UnixNano(), now.UnixNano()))
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("session token hash: %w", state.ErrExists)
		}
	}
	if c.EndSession != "" {
		if _, err := tx.StmtContext(ctx, s.deleteSession).ExecContext(ctx, c.EndSession); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
	}
	return nil
}

// validChange checks what a change names besides its stacks.
func validChange(user string, c state.Change, now time.Time) error {
	if a := c.Create; a != nil {
		if a.User != user {
			return fmt.Errorf("create account %q in a change to %q", a.User, user)
		}
		if err := validAccount(*a); err != nil {
			return err
		}
	}
	if sess := c.Session; sess != nil {
		if sess.User != user {
			return fmt.Errorf("session of %q in a change to %q", sess.User, user)
		}
		if err := validSession(*sess, now); err != nil {
			return err
		}
	}
	return nil
}

// applyStack adds a quantity delta to one stack of table i, deleting the
// stack when it reaches zero; it returns ErrConflict if it would go below.
func (s *Store) applyStack(ctx context.Context, tx *sql.Tx, i int, user string, d state.Stack) error {
	if d.Quantity > 0 {
		_, err := tx.StmtContext(ctx, s.add[i]).ExecContext(ctx, user, d.Type, d.Quality, d.Quantity)
		return err
	}
	n, err := rowsAffected(tx.StmtContext(ctx, s.take[i]).ExecContext(ctx, user, d.Type, d.Quality, -d.Quantity))
	if err != nil || n == 1 {
		return err
	}
	n, err = rowsAffected(tx.StmtContext(ctx, s.takeLast[i]).ExecContext(ctx, user, d.Type, d.Quality, -d.Quantity))
	if err != nil || n == 1 {
		return err
	}
	return state.ErrConflict
}

// CreateSession stores s until its ExpiresAt. It returns ErrNotFound when
// the user has no account and ErrExists when a live session of another
// player has the same token hash; the same player's is renewed.
func (s *Store) CreateSession(ctx context.Context, sess state.Session) error {
	now := time.Now()
	if err := validSession(sess, now); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	n, err := rowsAffected(s.createSession.ExecContext(ctx, sess.TokenHash, sess.User, sess.ExpiresAt.UnixNano(), now.UnixNano()))
	if err != nil {
		return fmt.Errorf("create session for %q: %w", sess.User, err)
	}
	if n == 0 {
		var exists bool
		if err := s.accountExists.QueryRowContext(ctx, sess.User).Scan(&exists); err != nil {
			return fmt.Errorf("create session for %q: %w", sess.User, err)
		}
		if !exists {
			return fmt.Errorf("create session for %q: %w", sess.User, state.ErrNotFound)
		}
		return fmt.Errorf("create session for %q: token hash: %w", sess.User, state.ErrExists)
	}
	s.rememberSession(sess)
	return nil
}

// rememberSession caches a session the file now holds, and now and then
// purges the expired ones.
func (s *Store) rememberSession(sess state.Session) {
	if _, cached := s.sessions.Load(sess.TokenHash); cached || s.nSessions.Load() < maxCachedSessions {
		if _, replaced := s.sessions.Swap(sess.TokenHash, cachedSession{user: sess.User, expires: sess.ExpiresAt.UnixNano()}); !replaced {
			s.nSessions.Add(1)
		}
	}
	now := time.Now()
	if last := s.lastPurge.Load(); now.UnixNano()-last > int64(purgeEvery) && s.lastPurge.CompareAndSwap(last, now.UnixNano()) {
		// In the background: the committer may be the caller, and the
		// purge is a write of its own.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = s.purge(ctx, now)
		}()
	}
}

// forgetSession drops a session from the cache.
func (s *Store) forgetSession(tokenHash string) {
	if _, deleted := s.sessions.LoadAndDelete(tokenHash); deleted {
		s.nSessions.Add(-1)
	}
}

// maxCachedSessions bounds the session cache (about 150 bytes each);
// sessions beyond it are read from the file.
const maxCachedSessions = 1 << 20

// cachedSession is a session this process created.
type cachedSession struct {
	user    string
	expires int64 // unix nanoseconds
}

func (s *Store) purge(ctx context.Context, now time.Time) error {
	s.lastPurge.Store(now.UnixNano())
	s.sessions.Range(func(k, v any) bool {
		if v.(cachedSession).expires <= now.UnixNano() {
			if _, deleted := s.sessions.LoadAndDelete(k); deleted {
				s.nSessions.Add(-1)
			}
		}
		return true
	})
	if _, err := s.purgeSessions.ExecContext(ctx, now.UnixNano()); err != nil {
		return fmt.Errorf("purge expired sessions: %w", err)
	}
	return nil
}

// Session returns the live session with that token hash, or ErrNotFound.
func (s *Store) Session(ctx context.Context, tokenHash string) (state.Session, error) {
	now := time.Now().UnixNano()
	if v, ok := s.sessions.Load(tokenHash); ok {
		if c := v.(cachedSession); c.expires > now {
			return state.Session{TokenHash: tokenHash, User: c.user, ExpiresAt: time.Unix(0, c.expires).UTC()}, nil
		}
	}
	var (
		sess = state.Session{TokenHash: tokenHash}
		exp  int64
	)
	err := s.session.QueryRowContext(ctx, tokenHash, now).Scan(&sess.User, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return state.Session{}, fmt.Errorf("read session: %w", state.ErrNotFound)
	}
	if err != nil {
		return state.Session{}, fmt.Errorf("read session: %w", err)
	}
	sess.ExpiresAt = time.Unix(0, exp).UTC()
	return sess, nil
}

// DeleteSession removes a session; deleting a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	s.forgetSession(tokenHash)
	if _, err := s.deleteSession.ExecContext(ctx, tokenHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func validAccount(a state.Account) error {
	switch {
	case a.User == "":
		return errors.New("empty user name")
	case a.Gold < 0:
		return fmt.Errorf("account %q: negative gold %d", a.User, a.Gold)
	}
	return nil
}

func validSession(s state.Session, now time.Time) error {
	switch {
	case s.TokenHash == "":
		return errors.New("empty token hash")
	case s.User == "":
		return errors.New("empty user name")
	case !s.ExpiresAt.After(now):
		return fmt.Errorf("session for %q expires in the past (%s)", s.User, s.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}
