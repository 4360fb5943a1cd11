package controllers

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// With an audience configured (the chart's and the manifests' default), the gateway
// accepts only tokens for it: a pod's default token, which the kubelet requests for
// the API server's own audience, is refused; a projected serviceAccountToken with the
// audience is accepted.
var _ = Describe("Gateway token audience", Ordered, func() {
	It("refuses a pod's default token and accepts its projected token for the audience", func() {
		ctx := context.Background()
		gw := startGateway()
		ns := newNamespace(ctx)
		obj := tenant(ctx, ns, "aud", nil)
		DeferCleanup(deleteAndWait, ctx, obj)
		worker(ctx, ns, "worker")
		expectAllReady(ctx, client.ObjectKeyFromObject(obj))

		// A worker pod (never scheduled: there is no node), for tokens bound to it as the
		// kubelet requests them.
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "worker"},
			Spec: corev1.PodSpec{
				ServiceAccountName: "worker",
				Containers:         []corev1.Container{{Name: "worker", Image: "node:22-slim"}},
			},
		}
		Expect(k8sClient.Create(ctx, pod)).To(Succeed())
		DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), pod) })

		read := `{"kind":"state","op":"read","key":{"signalId":"aud","bucketName":"b"}}`
		defaultToken := gw.token(ctx, ns, "worker", pod)
		projected := gw.token(ctx, ns, "worker", pod, tokenAudience)
		Eventually(func() int { s, _ := gw.op(projected, ns, "aud", read); return s }).
			WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Equal(200))
		status, body := gw.op(defaultToken, ns, "aud", read)
		Expect(status).To(Equal(401), body)
		Expect(body).To(ContainSubstring(`"code"`))
		// The refused token is a valid one, for the API server: only its audience is wrong.
		tr, err := gw.cs.AuthenticationV1().TokenReviews().Create(ctx,
			&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: defaultToken}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(tr.Status.Authenticated).To(BeTrue(), tr.Status.Error)
	})
})
