// Package infra connects a BacktestPersistence to its servers: it resolves the
// referenced Secrets into connection strings, parses and validates them, derives
// the tenant's database name and Redis key prefix, shares reference-counted
// MongoDB and Redis clients between tenants and the gateway, probes servers and
// classifies their errors for status conditions, and removes a tenant's data.
package infra
