package v1

// Condition types of a BacktestPersistence.
const (
	// ConditionReady summarizes the others: True when MongoReady, RedisReady,
	// DataOwned and IndexesReady are True, and StoreReady too once the gateway has reported it.
	ConditionReady = "Ready"
	// ConditionMongoReady reports whether MongoDB answered a probe with the referenced credentials.
	ConditionMongoReady = "MongoReady"
	// ConditionRedisReady reports whether Redis answered a probe with the referenced credentials.
	ConditionRedisReady = "RedisReady"
	// ConditionIndexesReady reports whether the index migration of every served kind succeeded.
	ConditionIndexesReady = "IndexesReady"
	// ConditionDataOwned reports whether this object owns its MongoDB database and
	// its Redis key space: the ownership is recorded in the data (a marker document in
	// the database, a claim in the Redis server's key-space registry) and checked on
	// every reconcile. The gateway serves only tenants whose data they own.
	ConditionDataOwned = "DataOwned"
	// ConditionStoreReady is reported by the gateway's tenant registry: the adapter store
	// for this tenant is open and serving. The controller keeps it as it finds it.
	ConditionStoreReady = "StoreReady"
)

// Condition reasons. "Could not check" (CheckFailed, DependencyNotReady) is
// deliberately distinct from "checked and bad" (Unreachable, AuthenticationFailed).
const (
	// ReasonSucceeded: the check passed.
	ReasonSucceeded = "Succeeded"
	// ReasonSecretMissing: a referenced Secret does not exist.
	ReasonSecretMissing = "SecretMissing"
	// ReasonSecretKeyMissing: a referenced Secret exists but lacks the key (or it is empty).
	ReasonSecretKeyMissing = "SecretKeyMissing"
	// ReasonInvalidURI: the connection string in the Secret cannot be parsed.
	ReasonInvalidURI = "InvalidURI"
	// ReasonUnreachable: the server could not be reached (refused, timed out, DNS).
	ReasonUnreachable = "Unreachable"
	// ReasonAuthenticationFailed: the server was reached and rejected the credentials.
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonCheckFailed: the check could not be completed for another reason; the state is unknown.
	ReasonCheckFailed = "CheckFailed"
	// ReasonDependencyNotReady: the check was not attempted because what it needs is not ready.
	ReasonDependencyNotReady = "DependencyNotReady"
	// ReasonMigrationFailed: at least one index could not be created or replaced.
	ReasonMigrationFailed = "MigrationFailed"
	// ReasonProgressing: the first check has not completed yet.
	ReasonProgressing = "Progressing"
	// ReasonDatabaseInUse: the database is owned by another BacktestPersistence (its
	// marker names another object). The message never names the other object.
	ReasonDatabaseInUse = "DatabaseInUse"
	// ReasonKeyPrefixOverlaps: the Redis key prefix equals, contains or is contained in
	// the key prefix of another BacktestPersistence on the same Redis server. The
	// message never names the other object or its prefix.
	ReasonKeyPrefixOverlaps = "KeyPrefixOverlaps"
	// ReasonDeleting: the object is being deleted.
	ReasonDeleting = "Deleting"
)

// Deletion policies.
const (
	// DeletionPolicyRetain keeps the tenant's database and Redis keys when the object is deleted.
	DeletionPolicyRetain = "Retain"
	// DeletionPolicyDelete drops the tenant's database and removes its Redis keys by
	// prefix, each only when this object owns it.
	DeletionPolicyDelete = "Delete"
)

// Finalizer is the finalizer the controller puts on every BacktestPersistence so
// that deletionPolicy is honoured and connections are released.
const Finalizer = "persistence.backtestkit.dev/finalizer"
