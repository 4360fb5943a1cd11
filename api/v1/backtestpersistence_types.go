package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretKeySelector names one key of a Secret in the namespace of the BacktestPersistence.
// Cross-namespace references are deliberately impossible: a tenant can only use its own Secrets.
type SecretKeySelector struct {
	// Name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// Key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// TLSSpec configures TLS towards a server beyond what its connection string says.
// Its presence turns TLS on.
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipVerify) && self.insecureSkipVerify && has(self.caSecretRef))",message="caSecretRef has no effect with insecureSkipVerify"
type TLSSpec struct {
	// CASecretRef names a PEM bundle of the certificate authorities to trust
	// instead of the system roots.
	// +optional
	CASecretRef *SecretKeySelector `json:"caSecretRef,omitempty"`
	// ServerName overrides the name the server certificate is checked against.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`
	// InsecureSkipVerify disables certificate verification. For tests only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// MongoSpec says which MongoDB the tenant uses.
// +kubebuilder:validation:XValidation:rule="has(self.database) == has(oldSelf.database) && (!has(self.database) || self.database == oldSelf.database)",message="database is immutable"
type MongoSpec struct {
	// URISecretRef names the Secret key holding a mongodb:// or mongodb+srv:// connection string.
	URISecretRef SecretKeySelector `json:"uriSecretRef"`
	// Database is the database the tenant's collections live in. Default: derived
	// from the namespace and name of the BacktestPersistence. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	// +kubebuilder:validation:XValidation:rule="!(self in ['admin', 'local', 'config'])",message="admin, local and config are reserved databases"
	Database string `json:"database,omitempty"`
	// TLS options beyond the connection string.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`
}

// RedisSpec says which Redis the tenant uses as its cache.
// +kubebuilder:validation:XValidation:rule="has(self.keyPrefix) == has(oldSelf.keyPrefix) && (!has(self.keyPrefix) || self.keyPrefix == oldSelf.keyPrefix)",message="keyPrefix is immutable"
type RedisSpec struct {
	// URLSecretRef names the Secret key holding a redis:// or rediss:// URL. Sentinel:
	// add master_name (and more sentinels as addr parameters); cluster: list the other
	// nodes as addr parameters, or use the redis+cluster:// scheme.
	URLSecretRef SecretKeySelector `json:"urlSecretRef"`
	// KeyPrefix starts every Redis key of the tenant; ":" is appended when missing.
	// Default: derived from the object's UID. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.:/{}-]+$`
	KeyPrefix string `json:"keyPrefix,omitempty"`
	// TLS options beyond the URL.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`
}

// CacheSpec tunes the Redis cache in front of MongoDB.
type CacheSpec struct {
	// Enabled turns the Redis cache on. When off, every read goes to MongoDB.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
	// TTL bounds how long a cached entry lives (every cached entry expires; the cache's
	// coherence relies on it). Empty: 24h, the store's default.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="ttl must be at least 1s"
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// RetentionSpec bounds what a list keeps in MongoDB. Items of the consumer's window
// (the list's window of highest priority or newest createdAt) are never pruned.
// +kubebuilder:validation:XValidation:rule="has(self.maxItems) || has(self.maxAge)",message="retention needs maxItems or maxAge"
type RetentionSpec struct {
	// MaxItems keeps at most that many items per list: the window, and the most
	// recently written of the others. At least the list's window.
	// +optional
	// +kubebuilder:validation:Minimum=50
	MaxItems *int64 `json:"maxItems,omitempty"`
	// MaxAge prunes items last written longer ago than that (at least 1m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="maxAge must be at least 1m"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// ListSpec tunes one list kind.
type ListSpec struct {
	// Window is how many items a read of the list returns: the items of highest
	// priority (storage, log) or newest createdAt (notification). Default and
	// minimum: what backtest-kit keeps (storage 50, notification 500, log 1000).
	// +optional
	// +kubebuilder:validation:Maximum=100000
	Window *int32 `json:"window,omitempty"`
	// Retention prunes older items from MongoDB; without it every item is kept.
	// +optional
	Retention *RetentionSpec `json:"retention,omitempty"`
}

// ListsSpec tunes the list kinds: what a read returns and how long items are kept.
// +kubebuilder:validation:XValidation:rule="!has(self.storage) || !has(self.storage.window) || self.storage.window >= 50",message="storage.window must be at least 50"
// +kubebuilder:validation:XValidation:rule="!has(self.notification) || !has(self.notification.window) || self.notification.window >= 500",message="notification.window must be at least 500"
// +kubebuilder:validation:XValidation:rule="!has(self.log) || !has(self.log.window) || self.log.window >= 1000",message="log.window must be at least 1000"
// +kubebuilder:validation:XValidation:rule="!has(self.storage) || !has(self.storage.retention) || !has(self.storage.retention.maxItems) || self.storage.retention.maxItems >= (has(self.storage.window) ? self.storage.window : 50)",message="storage.retention.maxItems must be at least the storage window"
// +kubebuilder:validation:XValidation:rule="!has(self.notification) || !has(self.notification.retention) || !has(self.notification.retention.maxItems) || self.notification.retention.maxItems >= (has(self.notification.window) ? self.notification.window : 500)",message="notification.retention.maxItems must be at least the notification window"
// +kubebuilder:validation:XValidation:rule="!has(self.log) || !has(self.log.retention) || !has(self.log.retention.maxItems) || self.log.retention.maxItems >= (has(self.log.window) ? self.log.window : 1000)",message="log.retention.maxItems must be at least the log window"
type ListsSpec struct {
	// Storage is backtest-kit's signal history (per mode).
	// +optional
	Storage *ListSpec `json:"storage,omitempty"`
	// Notification is the notification feed (per mode).
	// +optional
	Notification *ListSpec `json:"notification,omitempty"`
	// Log is the persisted log.
	// +optional
	Log *ListSpec `json:"log,omitempty"`
}

// BacktestPersistenceSpec is the desired state of a tenant's persistence.
type BacktestPersistenceSpec struct {
	// Mongo is the source of truth.
	Mongo MongoSpec `json:"mongo"`
	// Redis is the cache.
	Redis RedisSpec `json:"redis"`
	// Adapters lists the kinds the gateway serves for this tenant. Empty: all 17
	// (backtest-kit 19.x uses the first 16; dictionary is backtest-kit 20.x's).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=17
	// +kubebuilder:validation:items:Enum=signal;schedule;strategy;risk;partial;breakeven;candle;storage;notification;log;measure;interval;memory;recent;state;session;dictionary
	Adapters []string `json:"adapters,omitempty"`
	// DeletionPolicy says what happens to the tenant's data when this object is
	// deleted: Retain keeps it (and its ownership markers, so that only an object of
	// the same namespace can adopt it); Delete drops the database and the Redis keys
	// under the prefix, each only when this object owns it.
	// +optional
	// +kubebuilder:default=Retain
	// +kubebuilder:validation:Enum=Retain;Delete
	DeletionPolicy string `json:"deletionPolicy,omitempty"`
	// HealthCheckInterval is how often the connections are probed while healthy
	// (jittered). Default 30s; at least 1s, at most 1h.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || (duration(self) >= duration('1s') && duration(self) <= duration('1h'))",message="healthCheckInterval must be between 1s and 1h"
	HealthCheckInterval metav1.Duration `json:"healthCheckInterval,omitzero"`
	// Cache tunes the Redis cache.
	// +optional
	// +kubebuilder:default={}
	Cache CacheSpec `json:"cache,omitempty"`
	// Lists tunes the list kinds (storage, notification, log): how many items a
	// read returns, and an optional retention policy applied by the controller.
	// +optional
	Lists *ListsSpec `json:"lists,omitempty"`
}

// RetentionStatus reports the retention policy of one list kind.
type RetentionStatus struct {
	// Kind is the list kind: storage, notification or log.
	Kind string `json:"kind"`
	// Pruned counts the items this object's retention pruned, in total.
	Pruned int64 `json:"pruned"`
	// LastPruned counts the items pruned by the last run.
	LastPruned int64 `json:"lastPruned"`
	// LastRunTime is when the last run ended.
	// +optional
	LastRunTime *metav1.Time `json:"lastRunTime,omitempty"`
	// Pending: the last run stopped at its batch limit; the next one follows soon.
	// +optional
	Pending bool `json:"pending,omitempty"`
	// Message is the error of the last run, if it failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// IndexStatus summarizes the last index migration.
type IndexStatus struct {
	// Created counts indexes that were missing and were created.
	Created int32 `json:"created"`
	// Replaced counts indexes whose options conflicted (or that had a known older
	// layout) and were dropped and recreated.
	Replaced int32 `json:"replaced"`
	// Unchanged counts indexes that were already as desired.
	Unchanged int32 `json:"unchanged"`
	// Failed counts indexes that could not be created or replaced.
	Failed int32 `json:"failed"`
	// FailedCollection is the collection of the first failure.
	// +optional
	FailedCollection string `json:"failedCollection,omitempty"`
	// FailedIndex is the index name of the first failure.
	// +optional
	FailedIndex string `json:"failedIndex,omitempty"`
	// Message is the error of the first failure.
	// +optional
	Message string `json:"message,omitempty"`
}

// AppliedSecret records the version of a Secret the current status was computed from.
type AppliedSecret struct {
	// Name of the Secret.
	Name string `json:"name"`
	// ResourceVersion of the Secret when it was read.
	ResourceVersion string `json:"resourceVersion"`
}

// BacktestPersistenceStatus is the observed state of a tenant's persistence.
type BacktestPersistenceStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, MongoReady, RedisReady, DataOwned, IndexesReady, StoreReady.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// Endpoint is where backtest workers reach this tenant's store; the gateway reports it.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Database is the MongoDB database actually used.
	// +optional
	Database string `json:"database,omitempty"`
	// KeyPrefix is the Redis key prefix actually used.
	// +optional
	KeyPrefix string `json:"keyPrefix,omitempty"`
	// MongoVersion is the version the MongoDB server reports.
	// +optional
	MongoVersion string `json:"mongoVersion,omitempty"`
	// RedisVersion is the version the Redis server reports.
	// +optional
	RedisVersion string `json:"redisVersion,omitempty"`
	// Indexes summarizes the last index migration.
	// +optional
	Indexes *IndexStatus `json:"indexes,omitempty"`
	// AppliedSecrets are the Secrets (and their versions) the status was computed from.
	// +optional
	// +listType=map
	// +listMapKey=name
	AppliedSecrets []AppliedSecret `json:"appliedSecrets,omitempty"`
	// Retention reports each list kind's retention policy.
	// +optional
	// +listType=map
	// +listMapKey=kind
	Retention []RetentionStatus `json:"retention,omitempty"`
}

// BacktestPersistence gives one tenant a MongoDB database and a Redis key space
// that the gateway serves to backtest-kit workers.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=btp,categories=backtestkit
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Mongo",type=string,JSONPath=`.status.conditions[?(@.type=="MongoReady")].status`
// +kubebuilder:printcolumn:name="Redis",type=string,JSONPath=`.status.conditions[?(@.type=="RedisReady")].status`
// +kubebuilder:printcolumn:name="Owned",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="DataOwned")].status`
// +kubebuilder:printcolumn:name="Indexes",type=string,JSONPath=`.status.conditions[?(@.type=="IndexesReady")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Database",type=string,priority=1,JSONPath=`.status.database`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BacktestPersistence struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BacktestPersistenceSpec   `json:"spec,omitempty"`
	Status BacktestPersistenceStatus `json:"status,omitempty"`
}

// BacktestPersistenceList is a list of BacktestPersistence.
//
// +kubebuilder:object:root=true
type BacktestPersistenceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BacktestPersistence `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BacktestPersistence{}, &BacktestPersistenceList{})
}
