// Model repository.
