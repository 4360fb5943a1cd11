package main

import (
	"reflect"
	"testing"

	"github.com/backtestpersistence/operator/internal/testenv"
)

func TestMongoOptions(t *testing.T) {
	// Without --mongo-backend: PostgreSQL where installed, else SQLite with the pragmas.
	auto := testenv.MongoOptions{Backend: testenv.BackendSQLite, SQLitePragmas: []string{"a(1)"}}
	if testenv.PostgresAvailable() {
		auto = testenv.MongoOptions{Backend: testenv.BackendPostgreSQL}
	}
	for _, c := range []struct {
		backend, pragmas string
		want             testenv.MongoOptions
	}{
		{"", "a(1)", auto},
		{testenv.BackendSQLite, " a(1), ,b(2) ", testenv.MongoOptions{Backend: testenv.BackendSQLite, SQLitePragmas: []string{"a(1)", "b(2)"}}},
		{testenv.BackendSQLite, "", testenv.MongoOptions{Backend: testenv.BackendSQLite}},
		{testenv.BackendPostgreSQL, "a(1)", testenv.MongoOptions{Backend: testenv.BackendPostgreSQL}},
	} {
		if got := mongoOptions(c.backend, c.pragmas); !reflect.DeepEqual(got, c.want) {
			t.Errorf("mongoOptions(%q, %q) = %+v, want %+v", c.backend, c.pragmas, got, c.want)
		}
	}
}
