package testenv

import (
	"context"
	"fmt"
	"time"
)

// Replication between the data nodes of a Sentinel or Cluster set authenticates as
// a dedicated user, so that a test can cut one replica off its master while the
// master keeps serving clients (which use the default user): disabling the user and
// killing the replication link leaves the replica unable to resync. The replica then
// misses every later write, and a failover to it loses them, as a failover to a
// lagging replica does.
const (
	replUser     = "repl"
	replPassword = "repl-secret"
)

// replicationConf is the config every data node gets.
func replicationConf() []string {
	return []string{
		"user default on nopass ~* &* +@all",
		"user " + replUser + " on >" + replPassword + " ~* &* +@all",
		"masteruser " + replUser,
		"masterauth " + replPassword,
		`save ""`,
		"appendonly no",
		"repl-diskless-sync yes",
		"repl-diskless-sync-delay 0",
		"repl-diskless-load disabled",
	}
}

// cutReplica stops master from feeding its replicas: the replication user is
// disabled and the links are killed; it returns once replica reports its link down.
func cutReplica(master, replica *redisNode) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := master.client()
	defer c.Close()
	if err := c.Do(ctx, "ACL", "SETUSER", replUser, "off").Err(); err != nil {
		return fmt.Errorf("disable the replication user on %s: %w", master.name, err)
	}
	if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		return fmt.Errorf("kill the replication links of %s: %w", master.name, err)
	}
	return waitUntil(10*time.Second, replica.name+" loses its master link", func(ctx context.Context) error {
		info, err := replica.info(ctx, "replication")
		if err != nil {
			return err
		}
		if info["master_link_status"] != "down" {
			return fmt.Errorf("master_link_status %q", info["master_link_status"])
		}
		return nil
	})
}

// restoreReplication enables the replication user on node again (a node that was cut
// off keeps retrying and resyncs on its own).
func restoreReplication(node *redisNode) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := node.client()
	defer c.Close()
	return c.Do(ctx, "ACL", "SETUSER", replUser, "on").Err()
}

// waitReplicaInSync waits until replica's link to its master is up and it has
// caught up with the master's offset.
func waitReplicaInSync(master, replica *redisNode) error {
	return waitUntil(20*time.Second, replica.name+" in sync with "+master.name, func(ctx context.Context) error {
		ri, err := replica.info(ctx, "replication")
		if err != nil {
			return err
		}
		if ri["master_link_status"] != "up" {
			return fmt.Errorf("master_link_status %q", ri["master_link_status"])
		}
		mi, err := master.info(ctx, "replication")
		if err != nil {
			return err
		}
		if mi["master_repl_offset"] != ri["slave_repl_offset"] {
			return fmt.Errorf("offsets: master %s, replica %s", mi["master_repl_offset"], ri["slave_repl_offset"])
		}
		return nil
	})
}
