package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Backends of FerretDB.
const (
	BackendPostgreSQL = "postgresql"
	BackendSQLite     = "sqlite"
)

// MongoOptions configure a started FerretDB.
type MongoOptions struct {
	// Backend is BackendPostgreSQL or BackendSQLite. Empty: BTP_FERRETDB_BACKEND, else
	// PostgreSQL where its binaries are installed, else SQLite.
	Backend string
	// Username and Password, when set, turn on SCRAM authentication with that user
	// (a wrong password then fails with error 18, as on MongoDB).
	Username, Password string
	// SQLitePragmas are added to FerretDB's SQLite URL as _pragma parameters, e.g.
	// "synchronous(normal)" (FerretDB already sets journal_mode(wal) and busy_timeout).
	SQLitePragmas []string
}

// SQLiteFastPragmas trade durability against power loss (not against a crash of
// FerretDB) for speed: in WAL mode, synchronous=NORMAL syncs at checkpoints only.
var SQLiteFastPragmas = []string{"synchronous(normal)", "cache_size(-65536)", "temp_store(memory)"}

// Mongo is a FerretDB server started for a test suite, or a server named by MONGODB_URI.
type Mongo struct {
	mu       sync.Mutex
	opts     MongoOptions
	uri      string
	addr     string
	dir      string
	pg       *postgres
	proc     *process
	external bool
}

// StartMongo starts FerretDB on a free loopback port (or uses MONGODB_URI).
func StartMongo(opts MongoOptions) (*Mongo, error) {
	if u := os.Getenv("MONGODB_URI"); u != "" {
		return &Mongo{uri: u, external: true, opts: opts}, nil
	}
	if opts.Backend == "" {
		opts.Backend = os.Getenv("BTP_FERRETDB_BACKEND")
	}
	if opts.Backend == "" {
		opts.Backend = BackendSQLite
		if PostgresAvailable() {
			opts.Backend = BackendPostgreSQL
		}
	}
	if _, err := Tool("ferretdb"); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "btp-ferretdb-")
	if err != nil {
		return nil, err
	}
	m := &Mongo{opts: opts, dir: dir, addr: "127.0.0.1:" + strconv.Itoa(port)}
	switch opts.Backend {
	case BackendPostgreSQL:
		if m.pg, err = startPostgres(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	case BackendSQLite:
	default:
		return nil, fmt.Errorf("unknown FerretDB backend %q", opts.Backend)
	}
	m.uri = "mongodb://" + m.addr + "/"
	if opts.Username != "" {
		m.uri = "mongodb://" + url.QueryEscape(opts.Username) + ":" + url.QueryEscape(opts.Password) + "@" + m.addr + "/?authSource=admin"
	}
	if err := m.Start(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// URI is the mongodb:// URI of the server (with credentials when auth is on).
func (m *Mongo) URI() string { return m.uri }

// Addr is host:port of the server.
func (m *Mongo) Addr() string { return m.addr }

// Backend is the FerretDB backend in use ("" for an external server).
func (m *Mongo) Backend() string {
	if m.external {
		return ""
	}
	return m.opts.Backend
}

// External reports whether the server was given by MONGODB_URI (it cannot be stopped).
func (m *Mongo) External() bool { return m.external }

// PID is the process id of the running FerretDB (0 when external or stopped).
func (m *Mongo) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.exited() {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// Start (re)starts FerretDB on its port, keeping its data.
func (m *Mongo) Start() error {
	if m.external {
		return fmt.Errorf("MongoDB at %s is external (MONGODB_URI): cannot start it", m.uri)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return nil
	}
	bin, err := Tool("ferretdb")
	if err != nil {
		return err
	}
	args := []string{bin, "--listen-addr=" + m.addr, "--state-dir=" + m.dir, "--telemetry=disable",
		"--debug-addr=-", "--log-level=error"}
	switch m.opts.Backend {
	case BackendPostgreSQL:
		args = append(args, "--handler=postgresql", "--postgresql-url="+m.pg.url())
	case BackendSQLite:
		sqliteURL := "file:" + m.dir + "/"
		if len(m.opts.SQLitePragmas) > 0 {
			q := url.Values{"_pragma": m.opts.SQLitePragmas}
			sqliteURL += "?" + q.Encode()
		}
		args = append(args, "--handler=sqlite", "--sqlite-url="+sqliteURL)
	}
	if m.opts.Username != "" {
		args = append(args, "--test-enable-new-auth", "--setup-database=admin",
			"--setup-username="+m.opts.Username, "--setup-password="+m.opts.Password)
	}
	p, err := startProcess("ferretdb", nil, args...)
	if err != nil {
		return err
	}
	m.proc = p
	return p.waitReady(30*time.Second, func(ctx context.Context) error {
		if err := dialReady(m.addr)(ctx); err != nil {
			return err
		}
		c, err := mongo.Connect(options.Client().ApplyURI(m.uri).SetServerSelectionTimeout(time.Second))
		if err != nil {
			return err
		}
		defer func() { _ = c.Disconnect(context.Background()) }()
		return c.Ping(ctx, nil)
	})
}

// Stop kills FerretDB (SIGKILL), as a crash would; its backend keeps running and
// keeps the data.
func (m *Mongo) Stop() error {
	if m.external {
		return fmt.Errorf("MongoDB at %s is external (MONGODB_URI): cannot stop it", m.uri)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proc.kill()
	return nil
}

// Restart stops and starts FerretDB; use it to unwedge a deadlocked server.
func (m *Mongo) Restart() error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.Start()
}

// Client returns a connected client of the server; the caller disconnects it.
func (m *Mongo) Client() (*mongo.Client, error) {
	return mongo.Connect(options.Client().ApplyURI(m.uri).SetMaxPoolSize(20).SetTimeout(10 * time.Second))
}

// Close stops FerretDB and its backend and removes their files.
func (m *Mongo) Close() {
	if m == nil || m.external {
		return
	}
	_ = m.Stop()
	m.pg.close()
	_ = os.RemoveAll(m.dir)
}
