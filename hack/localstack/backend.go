package main

import (
	"strings"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// mongoOptions picks the FerretDB backend of the local stack: PostgreSQL 15 where
// its server binaries are installed (hack/tools.sh installs them from Debian when
// it can; the throwaway cluster runs with fsync off, like the test suites'), else
// SQLite with the given pragmas (by default testenv.SQLiteFastPragmas:
// synchronous=NORMAL, a larger page cache and in-memory temp tables).
// The data lives in a temporary directory removed on exit either way, so neither
// trade of durability loses anything a restart would keep.
func mongoOptions(backend, sqlitePragmas string) testenv.MongoOptions {
	o := testenv.MongoOptions{Backend: backend}
	if o.Backend == "" && !testenv.PostgresAvailable() {
		o.Backend = testenv.BackendSQLite
	}
	if o.Backend == "" {
		o.Backend = testenv.BackendPostgreSQL
	}
	if o.Backend == testenv.BackendSQLite {
		for _, p := range strings.Split(sqlitePragmas, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.SQLitePragmas = append(o.SQLitePragmas, p)
			}
		}
	}
	return o
}

func backendName(backend string) string {
	switch backend {
	case testenv.BackendPostgreSQL:
		return "PostgreSQL"
	case testenv.BackendSQLite:
		return "SQLite"
	case "":
		return "an external server"
	}
	return backend
}
