package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// postgresBinDir holds Debian's PostgreSQL 15 server binaries.
var postgresBinDir = "/usr/lib/postgresql/15/bin"

// PostgresAvailable reports whether a PostgreSQL server can be started here.
func PostgresAvailable() bool {
	_, err := os.Stat(filepath.Join(postgresBinDir, "initdb"))
	return err == nil
}

// postgres is a throwaway PostgreSQL cluster (fsync off) backing FerretDB.
type postgres struct {
	dir  string
	port int
	proc *process
}

// asPostgresUser wraps argv so it runs as the postgres user when we are root
// (PostgreSQL refuses to run as root).
func asPostgresUser(argv ...string) []string {
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		return append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	return argv
}

func startPostgres() (*postgres, error) {
	dir, err := os.MkdirTemp("", "btp-pg-")
	if err != nil {
		return nil, err
	}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		pg, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	initdb := asPostgresUser(filepath.Join(postgresBinDir, "initdb"), "-D", filepath.Join(dir, "data"),
		"--auth=trust", "-U", "postgres", "--encoding=UTF8", "--no-sync")
	if out, err := exec.Command(initdb[0], initdb[1:]...).CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	argv := asPostgresUser(filepath.Join(postgresBinDir, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=400", "-c", "shared_buffers=128MB")
	p, err := startProcess("postgres", nil, argv...)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	pg := &postgres{dir: dir, port: port, proc: p}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := p.waitReady(30*time.Second, func(ctx context.Context) error {
		if err := dialReady(addr)(ctx); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, filepath.Join(postgresBinDir, "pg_isready"), "-h", "127.0.0.1", "-p", strconv.Itoa(port)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_isready: %s", out)
		}
		return nil
	}); err != nil {
		pg.close()
		return nil, err
	}
	return pg, nil
}

// url is the PostgreSQL URL FerretDB connects to.
func (p *postgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?pool_max_conns=100", p.port)
}

func (p *postgres) close() {
	if p == nil {
		return
	}
	p.proc.stop(5 * time.Second)
	_ = os.RemoveAll(p.dir)
}
