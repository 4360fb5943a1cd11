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

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// historyBase is the createdAt of the seeded notifications, minus their number.
const historyBase = 2_000_000_000_000

// historyTenant holds the 200,000 notifications: a tenant (and database) of its own,
// because FerretDB scans a collection for every upsert, so a shared tenant's
// notification writes would slow down with that history, and removing it again
// (a $regex delete over 200,000 documents) outlasts the spec.
const historyTenant = "history"

var _ = Describe("a live history of 200,000 notifications", Ordered, func() {
	It("restores the newest 500 of 200,000 stored notifications after a restart", func(ctx SpecContext) {
		database := fmt.Sprintf("history_%d", time.Now().UnixNano())
		By("creating a tenant of its own on a database of its own")
		kubectlApply(ctx, tenantOnDatabase(historyTenant, database))
		DeferCleanup(func(ctx SpecContext) {
			kubectl(ctx, "-n", tenantNamespace, "delete", "backtestpersistence", historyTenant, "--wait=false")
			dropDatabase(ctx, database)
		})
		kubectl(ctx, "-n", tenantNamespace, "wait", "--for=condition=Ready", "--timeout=120s", "backtestpersistence/"+historyTenant)

		const n = 200_000
		By("inserting 200,000 live notifications in @backtest-kit/mongo's layout")
		seedLiveNotifications(ctx, database, n)
		// An adopted history has no head yet: the first read builds it and answers 503
		// (retry) until then.
		read := map[string]any{"kind": "notification", "op": "read", "key": map[string]any{"backtest": false}}
		Eventually(func(g Gomega) {
			code, body := gatewayOp(ctx, historyTenant, read)
			g.Expect(code).To(Equal(http.StatusOK), "%s", tail(string(body), 300))
		}).WithTimeout(10 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())

		By("restarting backtest-kit on it: it restores the newest 500")
		expectNewest(restoreNotifications(ctx, historyTenant), n-499, n)
		item := map[string]any{"id": fmt.Sprintf("hist-%07d", n+1), "type": "signal.opened", "backtest": false, "createdAt": historyBase + n + 1}
		code, body := gatewayOp(ctx, historyTenant, map[string]any{"kind": "notification", "op": "write", "key": map[string]any{"backtest": false}, "value": []any{item}})
		Expect(code).To(Equal(http.StatusOK), "%s", body)
		By("restarting it once more: the window moved by the write")
		expectNewest(restoreNotifications(ctx, historyTenant), n-498, n+1)
	}, SpecTimeout(15*time.Minute))
})

// dropDatabase removes a spec's own database.
func dropDatabase(ctx context.Context, database string) {
	mc, err := mongo.Connect(options.Client().ApplyURI(mongoURI))
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = mc.Disconnect(context.Background()) }()
	Expect(mc.Database(database).Drop(ctx)).To(Succeed(), "drop %s", database)
}

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
	// Written behind the store's back: as docs/store.md says for a restore or a bulk
	// insert, the list head's meta document goes (there is none on a fresh database),
	// and the next read rebuilds the head.
	_, err = mc.Database(database).Collection("notification-head").DeleteOne(ctx,
		bson.D{{Key: "backtest", Value: false}, {Key: "notificationId", Value: ""}})
	Expect(err).NotTo(HaveOccurred())
}

// gatewayOp sends one operation to a tenant of the namespace and returns the HTTP
// status and body.
func gatewayOp(ctx context.Context, tenant string, op map[string]any) (int, []byte) {
	b, _ := json.Marshal(op)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		fmt.Sprintf("%s/v1/namespaces/%s/persistences/%s/ops", gatewayURL, tenantNamespace, tenant), bytes.NewReader(b))
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
// notifications from a tenant through the gateway and returns what it restored.
func restoreNotifications(ctx context.Context, tenant string) []restored {
	cmd := exec.CommandContext(ctx, "node", filepath.Join(nodeDir, "restore.mjs"))
	cmd.Dir = nodeDir
	cmd = withTenantEnv(cmd, tenant)
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
