"""Your own files (``data.name: files``): tables, image folders and saved data sets read through Hugging
Face ``datasets``.

:mod:`~labelemb.data.files.loader` registers the data set; :mod:`~labelemb.data.files.options` is
the ``data.files`` schema and its checks; :mod:`~labelemb.data.files.paths` finds the files,
:mod:`~labelemb.data.files.tables` reads them into splits, :mod:`~labelemb.data.files.digest`
fingerprints them, :mod:`~labelemb.data.files.memo` keeps a text table read once per process,
:mod:`~labelemb.data.files.rows` and :mod:`~labelemb.data.files.labels` read a
table's columns and labels.
"""
