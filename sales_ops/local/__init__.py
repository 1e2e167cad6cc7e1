"""The embedded AWS: a moto server plus stand-ins for the services moto stores but does not run."""
