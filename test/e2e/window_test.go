package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/gomega"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// historyBase is above every createdAt the other scenarios write (2025 fake clocks),
// so the newest 500 of the live list are the seeded ones.
const historyBase = 2_000_000_000_000

type restored struct {
	ID        string `json:"id"`
	CreatedAt int64  `json:"createdAt"`
}

// seedLiveNotifications inserts n live notifications straight into the tenant's
// database in the @backtest-kit/mongo layout, createdAt historyBase+1..+n.
func seedLiveNotifications(ctx context.Context, database string, n int) {
	mc, err := mongo.Connect(options.Client().ApplyURI(mongoURI))
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = mc.Disconnect(context.Background()) }()
	coll := mc.Database(database).Collection("notification-items")
	now := time.Now().UTC()
	const chunk = 5000
	for start := 1; start <= n; start += chunk {
		docs := make([]any, 0, chunk)
		for k := start; k < start+chunk && k <= n; k++ {
			id := fmt.Sprintf("hist-%07d", k)
			docs = append(docs, bson.D{{Key: "backtest", Value: false}, {Key: "notificationId", Value: id},
				{Key: "payload", Value: bson.D{{Key: "id", Value: id}, {Key: "type", Value: "signal.opened"}, {Key: "backtest", Value: false},
					{Key: "createdAt", Value: int64(historyBase + k)}, {Key: "symbol", Value: "BTCUSDT"}}},
				{Key: "createDate", Value: now}, {Key: "updatedDate", Value: now}})
		}
		_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		Expect(err).NotTo(HaveOccurred())
	}
	// Written behind the store's back: the live list's head (built by the live
	// scenarios' reads) does not hold them. As docs/store.md says for a restore or a
	// bulk insert, its meta document goes, and the next read rebuilds the head.
	_, err = mc.Database(database).Collection("notification-head").DeleteOne(ctx,
		bson.D{{Key: "backtest", Value: false}, {Key: "notificationId", Value: ""}})
	Expect(err).NotTo(HaveOccurred())
}

// unseedLiveNotifications deletes what seedLiveNotifications inserted, and their head
// copies, behind the store's back again: the head's meta document goes too, so the
// next read of the live list rebuilds it.
func unseedLiveNotifications(ctx context.Context, database string) {
	mc, err := mongo.Connect(options.Client().ApplyURI(mongoURI))
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = mc.Disconnect(context.Background()) }()
	db := mc.Database(database)
	seeded := bson.D{{Key: "backtest", Value: false}, {Key: "notificationId", Value: bson.D{{Key: "$regex", Value: "^hist-"}}}}
	for _, coll := range []string{"notification-items", "notification-head"} {
		_, err := db.Collection(coll).DeleteMany(ctx, seeded)
		Expect(err).NotTo(HaveOccurred(), "delete the seeded history from %s", coll)
	}
	_, err = db.Collection("notification-head").DeleteOne(ctx, bson.D{{Key: "backtest", Value: false}, {Key: "notificationId", Value: ""}})
	Expect(err).NotTo(HaveOccurred())
}

// gatewayOp sends one operation to the tenant and returns the HTTP status and body.
func gatewayOp(ctx context.Context, op map[string]any) (int, []byte) {
	b, _ := json.Marshal(op)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		fmt.Sprintf("%s/v1/namespaces/%s/persistences/%s/ops", gatewayURL, tenantNamespace, tenantName), bytes.NewReader(b))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(res.Body)
	return res.StatusCode, out.Bytes()
}

// restoreNotifications starts a backtest-kit process that restores its live
// notifications through the gateway and returns what it restored.
func restoreNotifications(ctx context.Context) []restored {
	cmd := exec.CommandContext(ctx, "node", filepath.Join(nodeDir, "restore.mjs"))
	cmd.Dir = nodeDir
	cmd = withGatewayEnv(cmd)
	out, err := cmd.Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	Expect(err).NotTo(HaveOccurred(), "restore.mjs: %s", tail(string(stderr), 4000))
	var list []restored
	Expect(json.Unmarshal(bytes.TrimSpace(out), &list)).To(Succeed(), "restore.mjs printed %s", tail(string(out), 2000))
	return list
}

// expectNewest checks that list is exactly the seeded items lo..hi, oldest first.
func expectNewest(list []restored, lo, hi int) {
	Expect(list).To(HaveLen(hi - lo + 1))
	for i, n := range list {
		k := lo + i
		Expect(n.ID).To(Equal(fmt.Sprintf("hist-%07d", k)), "item %d", i)
		Expect(n.CreatedAt).To(Equal(int64(historyBase + k)))
	}
}
