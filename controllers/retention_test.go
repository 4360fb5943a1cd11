package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
)

// seedList inserts n list items straight into a collection in the public layout,
// last written age ago (older items first): sort key i+1 for item i.
func seedList(ctx context.Context, db *mongo.Database, kind persist.Kind, n int, age time.Duration) {
	GinkgoHelper()
	spec, _ := persist.Lookup(kind)
	base := time.Now().Add(-age).UTC()
	docs := make([]any, 0, n)
	for i := range n {
		id := fmt.Sprintf("seed-%05d", i)
		at := base.Add(time.Duration(i) * time.Millisecond)
		d := bson.D{}
		for _, k := range spec.Key {
			d = append(d, bson.E{Key: k.Doc, Value: true})
		}
		d = append(d, bson.E{Key: spec.ItemField.Doc, Value: id},
			bson.E{Key: "payload", Value: bson.D{{Key: "id", Value: id}, {Key: spec.Head.SortField, Value: int64(i + 1)}, {Key: "type", Value: "info"}}},
			bson.E{Key: "createDate", Value: at}, bson.E{Key: "updatedDate", Value: at})
		docs = append(docs, d)
	}
	_, err := db.Collection(spec.Collection).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	Expect(err).NotTo(HaveOccurred())
}

func retentionOf(obj *v1.BacktestPersistence, kind persist.Kind) v1.RetentionStatus {
	for _, r := range obj.Status.Retention {
		if r.Kind == string(kind) {
			return r
		}
	}
	return v1.RetentionStatus{Kind: "<none>"}
}

var _ = Describe("Retention", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("refuses windows and maxItems below what backtest-kit keeps", func() {
		ns := newNamespace(ctx)
		for _, lists := range []*v1.ListsSpec{
			{Notification: &v1.ListSpec{Window: ptr(int32(100))}},
			{Log: &v1.ListSpec{Window: ptr(int32(999))}},
			{Storage: &v1.ListSpec{Window: ptr(int32(49))}},
			{Notification: &v1.ListSpec{Retention: &v1.RetentionSpec{MaxItems: ptr(int64(499))}}},
			{Log: &v1.ListSpec{Window: ptr(int32(2000)), Retention: &v1.RetentionSpec{MaxItems: ptr(int64(1500))}}},
			{Storage: &v1.ListSpec{Retention: &v1.RetentionSpec{}}},
			{Storage: &v1.ListSpec{Retention: &v1.RetentionSpec{MaxAge: &metav1.Duration{Duration: time.Second}}}},
		} {
			obj := newBTP(ns, "bad-"+randSuffix())
			obj.Spec.Lists = lists
			Expect(k8sClient.Create(ctx, obj)).NotTo(Succeed(), "%+v", lists)
		}
		ok := newBTP(ns, "ok")
		ok.Spec.Lists = &v1.ListsSpec{Notification: &v1.ListSpec{Window: ptr(int32(800)), Retention: &v1.RetentionSpec{MaxItems: ptr(int64(800))}}}
		Expect(k8sClient.Create(ctx, ok)).To(Succeed())
		Expect(k8sClient.Delete(ctx, ok)).To(Succeed())
	})

	It("prunes old items in bounded steps while writes keep coming, and never one of the window", func() {
		ns := newNamespace(ctx)
		// An adopted database: 3,000 notifications (backtest) and 1,500 log lines,
		// all written two hours ago, there before the object.
		const seeded = 3000
		db := mongoClient.Database(ns + "_keep")
		seedList(ctx, db, persist.KindNotification, seeded, 2*time.Hour)
		seedList(ctx, db, persist.KindLog, 1500, 2*time.Hour)
		obj := tenant(ctx, ns, "keep", func(o *v1.BacktestPersistence) {
			o.Spec.Lists = &v1.ListsSpec{
				Notification: &v1.ListSpec{Retention: &v1.RetentionSpec{MaxItems: ptr(int64(600))}},
				Log:          &v1.ListSpec{Retention: &v1.RetentionSpec{MaxAge: &metav1.Duration{Duration: time.Hour}}},
			}
		})
		key := client.ObjectKeyFromObject(obj)
		DeferCleanup(deleteAndWait, ctx, obj)
		got := expectAllReady(ctx, key)
		Expect(got.Status.Database).To(Equal(db.Name()))

		// A bot keeps writing: the whole window of 500 on every new notification,
		// as backtest-kit does, through a store on the same database and key space.
		store, err := persist.Open(persist.Options{Database: db, Redis: redisClient, KeyPrefix: infra.KeyPrefix(got), HealthInterval: -1,
			OpTimeout: 2 * time.Minute}) // the first write rewrites the 500 adopted items (FerretDB upserts scan)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(store.Close)
		var window []map[string]any
		for i := seeded - 499; i <= seeded; i++ {
			window = append(window, map[string]any{"id": fmt.Sprintf("seed-%05d", i-1), "createdAt": i, "type": "info"})
		}
		const written = 150
		var wg sync.WaitGroup
		var writeErr error
		wg.Go(func() {
			defer GinkgoRecover()
			for k := 1; k <= written; k++ {
				window = append(window[1:], map[string]any{"id": fmt.Sprintf("new-%04d", k), "createdAt": seeded + k, "type": "info"})
				b, _ := json.Marshal(window)
				wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				_, err := store.Do(wctx, persist.Request{Kind: persist.KindNotification, Op: persist.OpWrite, Key: map[string]any{"backtest": true}, Value: b})
				cancel()
				if err != nil {
					writeErr = err
					return
				}
			}
		})

		// Steps are bounded: no run reports more than 1,000 per kind, and it takes several.
		maxStep, pendingSeen := int64(0), false
		Eventually(func(g Gomega) {
			o := get(ctx, g, key)
			n := retentionOf(o, persist.KindNotification)
			maxStep = max(maxStep, n.LastPruned)
			pendingSeen = pendingSeen || n.Pending
			g.Expect(n.Message).To(BeEmpty())
			g.Expect(n.Pruned).To(BeNumerically(">", 1000))
		}).WithTimeout(3 * eventuallyTimeout).WithPolling(pollInterval).Should(Succeed())
		wg.Wait()
		Expect(writeErr).NotTo(HaveOccurred())

		// Once the writes stop: the newest 600 by write time are kept (the 150 new ones
		// and 450 seeded), everything else is pruned; the log keeps its window of 1,000
		// although every line is older than maxAge.
		notes, logs := db.Collection("notification-items"), db.Collection("log-items")
		Eventually(func(g Gomega) {
			o := get(ctx, g, key)
			n, _ := notes.CountDocuments(ctx, bson.D{})
			g.Expect(retentionOf(o, persist.KindNotification).Pruned).To(Equal(int64(seeded+written-600)), "%+v, %d stored", o.Status.Retention, n)
			g.Expect(retentionOf(o, persist.KindLog).Pruned).To(Equal(int64(500)))
			g.Expect(retentionOf(o, persist.KindLog).LastRunTime).NotTo(BeNil())
			g.Expect(retentionOf(o, persist.KindStorage).Kind).To(Equal("<none>"))
		}).WithTimeout(3 * eventuallyTimeout).WithPolling(pollInterval).Should(Succeed())
		Expect(maxStep).To(BeNumerically("<=", 1000))
		Expect(pendingSeen).To(BeTrue())
		Expect(notes.CountDocuments(ctx, bson.D{})).To(Equal(int64(600)))
		Expect(logs.CountDocuments(ctx, bson.D{})).To(Equal(int64(1000)))

		// Nothing of the windows is lost: the read is the bot's window, exactly.
		res, err := store.Do(ctx, persist.Request{Kind: persist.KindNotification, Op: persist.OpRead, Key: map[string]any{"backtest": true}})
		Expect(err).NotTo(HaveOccurred())
		var read []map[string]any
		Expect(json.Unmarshal(res.Value, &read)).To(Succeed())
		Expect(read).To(HaveLen(500))
		for i, it := range read {
			Expect(it["id"]).To(Equal(window[i]["id"]), "item %d", i)
		}
		res, err = store.Do(ctx, persist.Request{Kind: persist.KindLog, Op: persist.OpRead})
		Expect(err).NotTo(HaveOccurred())
		Expect(json.Unmarshal(res.Value, &read)).To(Succeed())
		Expect(read).To(HaveLen(1000))
		Expect(read[0]["priority"]).To(BeNumerically("==", 501))
		Expect(read[999]["priority"]).To(BeNumerically("==", 1500))

		// Dropping the policy drops its status.
		Eventually(func(g Gomega) {
			o := get(ctx, g, key)
			o.Spec.Lists.Log = nil
			g.Expect(k8sClient.Update(ctx, o)).To(Succeed())
		}).WithTimeout(eventuallyTimeout).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(retentionOf(get(ctx, g, key), persist.KindLog).Kind).To(Equal("<none>"))
		}).WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Succeed())
	})
})
