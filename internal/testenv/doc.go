// Package testenv starts the real servers the integration and end-to-end tests
// talk to: the Kubernetes API server (envtest, binaries from bin/), FerretDB (the
// MongoDB wire protocol, on PostgreSQL or SQLite) and redis-server, each on a
// free loopback port, and lets fault tests stop and restart them.
//
// MONGODB_URI and REDIS_URL point the tests at servers a user provides instead;
// such servers are External and cannot be stopped by a test.
package testenv
