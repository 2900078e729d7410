/* optim_ops.c — public optimizer updates: checks once, then the device's kernel. */
#include "ops/ops_common.h"

static sp_status opt_check(const char *op, const sp_tensor *p, const sp_tensor *s1, const char *n1,
                           const sp_tensor *s2, const char *n2, const sp_tensor *g, double loss_scale) {
    OP_TRY(op_f32(p, -1, op, "param"));
    int64_t n = sp_tensor_numel(p);
    OP_TRY(op_f32(g, -1, op, "grad")); OP_TRY(op_numel(g, n, op, "grad"));
    if (s1) { OP_TRY(op_f32(s1, -1, op, n1)); OP_TRY(op_numel(s1, n, op, n1)); }
    if (s2) { OP_TRY(op_f32(s2, -1, op, n2)); OP_TRY(op_numel(s2, n, op, n2)); }
    if (loss_scale == 0) return sp_error(SP_EINVAL, "%s: loss_scale is 0", op);
    return SP_OK;
}

sp_status sp_momentum_update(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr,
                             double momentum, double weight_decay, double loss_scale, int nesterov) {
    const char *op = "momentum_update";
    if (!moment) return sp_error(SP_EINVAL, "%s: moment is NULL", op);
    OP_TRY(opt_check(op, param, moment, "moment", NULL, NULL, grad, loss_scale));
    OP_SAME_DEVICE(op, T(param), T(moment), T(grad));
    return OP_CALL(param, momentum_update, param, moment, grad, lr, momentum, weight_decay, loss_scale, nesterov);
}

sp_status sp_sgd_update(sp_tensor *param, sp_tensor *accum, const sp_tensor *grad, double lr, double momentum,
                        double dampening, double weight_decay, double loss_scale, int nesterov, int first) {
    const char *op = "sgd_update";
    if (!accum && momentum > 0) return sp_error(SP_EINVAL, "%s: accum is NULL with momentum %g", op, momentum);
    OP_TRY(opt_check(op, param, accum, "accum", NULL, NULL, grad, loss_scale));
    OP_SAME_DEVICE(op, T(param), T(accum), T(grad));
    return OP_CALL(param, sgd_update, param, accum, grad, lr, momentum, dampening, weight_decay, loss_scale, nesterov,
                                   first);
}

sp_status sp_adam_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                         double beta1, double beta2, double eps, double beta1_power, double beta2_power,
                         double weight_decay, double loss_scale, int nesterov) {
    const char *op = "adam_update";
    if (!m || !v) return sp_error(SP_EINVAL, "%s: %s is NULL", op, !m ? "moment1" : "moment2");
    OP_TRY(opt_check(op, param, m, "moment1", v, "moment2", grad, loss_scale));
    if (beta1_power >= 1) return sp_error(SP_EINVAL, "%s: beta1_power must be < 1, got %g", op, beta1_power);
    OP_SAME_DEVICE(op, T(param), {m, "moment1"}, {v, "moment2"}, T(grad));
    return OP_CALL(param, adam_update, param, m, v, grad, lr, beta1, beta2, eps, beta1_power, beta2_power, weight_decay,
                                    loss_scale, nesterov);
}

sp_status sp_adam_amsgrad_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, sp_tensor *vhat, const sp_tensor *grad,
                                 double lr, double beta1, double beta2, double eps, double beta1_power,
                                 double beta2_power, double weight_decay, double loss_scale) {
    const char *op = "adam_amsgrad_update";
    if (!m || !v || !vhat) return sp_error(SP_EINVAL, "%s: %s is NULL", op, !m ? "moment1" : !v ? "moment2" : "vhat");
    OP_TRY(opt_check(op, param, m, "moment1", v, "moment2", grad, loss_scale));
    OP_TRY(opt_check(op, param, vhat, "vhat", NULL, NULL, grad, loss_scale));
    if (beta1_power >= 1) return sp_error(SP_EINVAL, "%s: beta1_power must be < 1, got %g", op, beta1_power);
    OP_SAME_DEVICE(op, T(param), {m, "moment1"}, {v, "moment2"}, T(vhat), T(grad));
    return OP_CALL(param, adam_amsgrad_update, param, m, v, vhat, grad, lr, beta1, beta2, eps, beta1_power,
                   beta2_power, weight_decay, loss_scale);
}

sp_status sp_adamw_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                          double beta1, double beta2, double eps, double weight_decay) {
    const char *op = "adamw_update";
    if (!m || !v) return sp_error(SP_EINVAL, "%s: %s is NULL", op, !m ? "moment1" : "moment2");
    OP_TRY(opt_check(op, param, m, "moment1", v, "moment2", grad, 1.0));
    OP_SAME_DEVICE(op, T(param), {m, "moment1"}, {v, "moment2"}, T(grad));
    return OP_CALL(param, adamw_update, param, m, v, grad, lr, beta1, beta2, eps, weight_decay);
}

sp_status sp_grad_centralize(sp_tensor *grad, const sp_tensor *param, double weight_decay, int64_t rows) {
    const char *op = "grad_centralize";
    OP_TRY(op_f32(grad, -1, op, "grad"));
    int64_t n = sp_tensor_numel(grad);
    if (param) { OP_TRY(op_f32(param, -1, op, "param")); OP_TRY(op_numel(param, n, op, "param")); }
    if (rows < 0 || (rows > 0 && n % rows != 0))
        return sp_error(SP_EINVAL, "%s: %lld rows do not divide %lld elements", op, (long long)rows, (long long)n);
    OP_SAME_DEVICE(op, T(grad), T(param));
    return OP_CALL(grad, grad_centralize, grad, param, weight_decay, rows);
}
