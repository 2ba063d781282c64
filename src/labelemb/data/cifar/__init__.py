"""CIFAR-10 and CIFAR-100: :mod:`~labelemb.data.cifar.loader` registers them and finds or downloads
them; :mod:`~labelemb.data.cifar.spec` says what each is, :mod:`~labelemb.data.cifar.archive`
reads the released archive and :mod:`~labelemb.data.cifar.batches` its pickled batches.
"""
