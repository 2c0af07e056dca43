"""The linear algebra under the layers and the bounds: Björck orthonormalization
(:mod:`~lipot.linalg.bjorck`), the weight normalizers and power iteration
(:mod:`~lipot.linalg.normalizers`), the convolution coefficients that turn a kernel norm into an
operator bound (:mod:`~lipot.linalg.conv_coefficients`), exact operator norms of convolutions
(:mod:`~lipot.linalg.operator_norms`), and the check that a module's call is its class's
computation (:mod:`~lipot.linalg.plain_call`).

Nothing here depends on the layers: :mod:`lipot.nn` and :mod:`lipot.certify` build on it.
"""
