"""Knowledge bases (RAG): parsing, structure-aware chunking, indexes (embedded and Postgres),
hybrid retrieval with citations, versions, evaluation and the serving stage.

``service.KnowledgeService`` is the entry point for the CLI, the API and the stage.
"""
